FROM alpine
RUN <<EOF
echo
EOFX
