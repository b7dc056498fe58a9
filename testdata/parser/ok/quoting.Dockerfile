FROM alpine
RUN echo "\u00e9" é ​ 
