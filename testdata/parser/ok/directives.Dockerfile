# syntax=docker/dockerfile:1
#ESCAPE = `
  # check=skip=all
FROM alpine
RUN echo a `
    b \c
# syntax=ignored: directives end at the first other line
