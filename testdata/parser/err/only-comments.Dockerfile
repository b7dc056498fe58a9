# only

   # comments
