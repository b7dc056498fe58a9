# a plain comment ends the directive section
# escape=`
FROM alpine
RUN echo a \
    b
