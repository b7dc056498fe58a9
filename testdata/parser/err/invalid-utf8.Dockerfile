FROM alpine
RUN echo ÿ
