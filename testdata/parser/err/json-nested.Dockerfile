FROM alpine
RUN ["a", ["nested"]]
