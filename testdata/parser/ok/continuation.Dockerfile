FROM alpine
RUN a \

    b \
   	 
    c
RUN d \
