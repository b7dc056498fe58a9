FROM alpine
LABEL single
