ARG BASE=alpine
FROM ${BASE} AS base
MAINTAINER someone <someone@example.com>
LABEL a=b "c d"="e f" g=h\ i
LABEL legacy key value with spaces
ENV PATH=/usr/bin:$PATH X="1 2"
ENV OLD style value
ARG A B=2 C=
EXPOSE 80 443/tcp 8000-8010/udp
ADD --chown=1:1 --chmod=644 https://example.com/a.tgz /opt/
ADD ["a b", "/c"]
COPY --from=base --link /a /b /dest/
COPY ["src", "dst"]
RUN --mount=type=cache,target=/root/.cache --network=none make all
RUN ["sh", "-c", "echo hi"]
CMD echo hello world
CMD ["/bin/app", "--flag"]
ENTRYPOINT ["tini", "--"]
ENTRYPOINT exec app
VOLUME /data /logs
VOLUME ["/x"]
USER app:app
WORKDIR /srv/app
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=3s CMD curl -f http://localhost/ || exit 1
HEALTHCHECK CMD ["curl", "-f", "http://localhost/"]
HEALTHCHECK NONE
SHELL ["/bin/bash", "-c"]
ONBUILD RUN echo triggered
ONBUILD COPY --from=base a b
