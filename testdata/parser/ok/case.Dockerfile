from alpine AS Build
rUn echo hi
Copy a b
