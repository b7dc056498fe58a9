FROM alpine
RUN echo \\
RUN echo a \ 	
  b
\
RUN echo c
