//! Shared helpers for kiln's benchmarks.

/// A synthetic Dockerfile with `instructions` instructions: every kind of
/// instruction, flags, exec and shell forms, line continuations, comments
/// and heredocs, in a fixed rotation so runs are comparable.
pub fn generated_dockerfile(instructions: usize) -> String {
    let mut out = String::from("# syntax=docker/dockerfile:1\n# check=skip=all\n");
    for i in 0..instructions {
        let line = match i % 20 {
            0 => format!("FROM --platform=$BUILDPLATFORM alpine:3.{i} AS stage{i}\n"),
            1 => format!("ARG VERSION_{i}=1.{i} OTHER_{i}\n"),
            2 => format!("ENV PATH=/opt/{i}/bin:$PATH LANG=\"C.UTF-8\" N={i}\n"),
            3 => format!("LABEL org.example.build=\"{i}\" maintainer=\"someone <a@b.c>\"\n"),
            4 => format!(
                "# install step {i}\nRUN apt-get update \\\n    && apt-get install -y --no-install-recommends \\\n       curl ca-certificates git \\\n    && rm -rf /var/lib/apt/lists/*\n"
            ),
            5 => format!("RUN --mount=type=cache,target=/root/.cache/{i} --network=none make -j4 all\n"),
            6 => format!("RUN <<EOF\nset -eu\necho step {i}\nprintf '%s\\n' \"$HOME\"\nEOF\n"),
            7 => format!("COPY --from=stage{i} --chown=1000:1000 --link /src/{i} /dst/{i}/\n"),
            8 => format!("COPY <<CONF /etc/app/{i}.conf\nkey = value {i}\nother = \"x\"\nCONF\n"),
            9 => format!("ADD --checksum=sha256:{i:064} https://example.com/{i}.tgz /opt/\n"),
            10 => format!("WORKDIR /srv/app/{i}\n"),
            11 => format!("USER {i}:{i}\n"),
            12 => format!("EXPOSE {} 443/tcp 9000-9010/udp\n", 8000 + i % 1000),
            13 => format!("VOLUME [\"/data/{i}\", \"/logs/{i}\"]\n"),
            14 => format!("CMD [\"/usr/bin/app\", \"--id\", \"{i}\"]\n"),
            15 => "ENTRYPOINT [\"tini\", \"--\"]\n".to_string(),
            16 => format!("HEALTHCHECK --interval=30s --timeout=3s CMD curl -f http://localhost:{i}/ || exit 1\n"),
            17 => "SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n".to_string(),
            18 => format!("ONBUILD RUN echo triggered {i}\n"),
            _ if (i / 20) % 2 == 0 => "STOPSIGNAL SIGTERM\n".to_string(),
            _ => format!("MAINTAINER m{i}\n"),
        };
        out.push_str(&line);
    }
    out
}
