FROM alpine
\
