# syntax=docker/dockerfile:1
# return-handler container image.
#
#   docker build -t return-handler:0.1.0 .
#   docker run --rm return-handler:0.1.0 --help
#
# Two stages: the first fetches the locked dependencies (requirements/service.lock.txt: every
# package pinned, every file's hash checked) and builds return-handler into wheels, the second
# installs those wheels offline. Nothing used to build (source tree, build caches, setuptools
# runs) reaches the final image, and the final stage never talks to a package index.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# The dependencies first: this layer is rebuilt only when the lock changes. --require-hashes:
# a file whose hash is not in the lock is refused. The lock is bind-mounted (the image copies
# nothing but the package) and goes along in /wheels for the final stage.
RUN --mount=type=bind,source=requirements/service.lock.txt,target=/tmp/service.lock.txt \
    pip wheel --require-hashes --wheel-dir /wheels -r /tmp/service.lock.txt \
 && cp /tmp/service.lock.txt /wheels/
# pyproject.toml names README.md as the package's long description, so the build needs it.
COPY pyproject.toml README.md ./
COPY service ./service
# --no-deps: return-handler alone; its dependencies are the locked wheels above.
RUN pip wheel --no-deps --wheel-dir /wheels .


FROM ${PYTHON_IMAGE}

# A fixed uid/gid lets Kubernetes verify runAsNonRoot and lets volumes be owned predictably;
# the Helm chart uses the same numbers.
ARG APP_UID=10001
ARG APP_GID=10001

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid "${APP_GID}" return-handler \
 && useradd --system --uid "${APP_UID}" --gid "${APP_GID}" --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin return-handler

# The wheels are bind-mounted rather than copied so they never become an image layer.
# --no-index: every dependency was fetched in the first stage. The locked set is installed with
# its hashes checked again, then return-handler without resolving anything; pip check proves
# the two fit together.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels --require-hashes -r /wheels/service.lock.txt \
 && pip install --no-index --no-deps /wheels/return_handler-*.whl \
 && pip check

USER ${APP_UID}:${APP_GID}
WORKDIR /tmp

# The service drains in-flight events on SIGTERM (RETURN_HANDLER_SHUTDOWN_GRACE_SECONDS).
STOPSIGNAL SIGTERM
ENTRYPOINT ["return-handler"]
CMD ["run"]
