FROM alpine
RUN <<EOF
echo hello
EOF
RUN <<-EOT
	echo tabs stripped later
	EOT
RUN <<'RAW' 3<<"ALSO" cat /dev/fd/3
echo $NOT_EXPANDED
RAW
data
ALSO
RUN <<EOF
#!/usr/bin/env python3
print("hi")
EOF
COPY <<A <<B /dest/
a
A
b
B
ONBUILD RUN <<EOF
echo later
EOF
RUN ["<<NOT", "a heredoc"]
RUN echo "<<NOT" '<<NOT'
ADD <<EOF /f
EOF
