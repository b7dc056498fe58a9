FROM alpine
ONBUILD from alpine
