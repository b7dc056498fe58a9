FROM --platform=$BUILDPLATFORM alpine
COPY --from="build stage" --exclude='*.md' --parents a b
RUN --mount=type=secret,id=x -- --not-a-flag
RUN --security=insecure
COPY --chown=josé a b
