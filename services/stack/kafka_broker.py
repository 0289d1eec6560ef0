"""A single-node KRaft Apache Kafka broker run as a plain JVM process."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from services.stack.processes import (
    StackError,
    port_open,
    read_pid,
    require_tool,
    spawn,
    terminate,
    wait_until,
)

KAFKA_VERSION = "4.1.1"
_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.custody</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{version}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId>
      <version>2.0.17</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
"""
_LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <File name="file" fileName="{log}"><PatternLayout pattern="[%d] %p %m (%c)%n"/></File>
  </Appenders>
  <Loggers>
    <Logger name="kafka" level="INFO"/>
    <Logger name="org.apache.kafka" level="WARN"/>
    <Root level="WARN"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
"""


def kafka_libs(cache_root: Path, version: str = KAFKA_VERSION) -> Path:
    """The broker's jars, fetched once with Maven into a cache outside the checkout."""
    home = cache_root / f"kafka-{version}"
    libs = home / "libs"
    marker = home / "complete"
    if marker.exists():
        return libs
    require_tool("java", "Install OpenJDK 17 or newer (apt-get install openjdk-17-jre-headless).")
    mvn = require_tool("mvn", "Install Maven (apt-get install maven) to fetch the Kafka jars.")
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(_POM.format(version=version))
    result = subprocess.run(
        [mvn, "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={libs}"],
        cwd=home,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        raise StackError(
            f"Maven could not fetch Apache Kafka {version}:\n{result.stdout[-2000:]}"
            f"{result.stderr[-2000:]}"
        )
    marker.write_text(version)
    return libs


@dataclass(frozen=True)
class KafkaBroker:
    """One broker+controller node whose data, config and log live under ``home``."""

    home: Path
    port: int
    controller_port: int
    libs: Path
    heap_mb: int = 512
    partitions: int = 6

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "kafka.log"

    def pid(self) -> int | None:
        return read_pid(self.pid_file)

    def _write_config(self) -> Path:
        data = self.home / "data"
        config = self.home / "server.properties"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": str(self.partitions),
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "log.flush.interval.messages": "9223372036854775807",
        }
        config.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        (self.home / "log4j2.xml").write_text(_LOG4J2.format(log=self.home / "server.log"))
        return config

    def _format_storage(self, config: Path) -> None:
        if (self.home / "data" / "meta.properties").exists():
            return
        classpath = f"{self.libs}/*"
        java = require_tool("java", "Install OpenJDK 17 or newer.")
        cluster_id = subprocess.run(
            [java, "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        result = subprocess.run(
            [
                java,
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(config),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"kafka-storage format failed: {result.stdout}{result.stderr}")

    def start(self, timeout: float = 60.0) -> None:
        """Start the broker (a no-op when it already runs) and wait until it listens."""
        if self.pid() is not None:
            return
        self.home.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        self._format_storage(config)
        java = require_tool("java", "Install OpenJDK 17 or newer.")
        spawn(
            [
                java,
                f"-Xms{self.heap_mb}m",
                f"-Xmx{self.heap_mb}m",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.home / 'log4j2.xml'}",
                "-cp",
                f"{self.libs}/*",
                "kafka.Kafka",
                str(config),
            ],
            log_file=self.log_file,
            pid_file=self.pid_file,
        )

        def listening() -> bool:
            if self.pid() is None:
                raise StackError(f"Kafka exited during start-up; see {self.log_file}")
            return port_open(self.port)

        wait_until(listening, timeout=timeout, what=f"Kafka on port {self.port}")

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid, timeout=30.0)
        self.pid_file.unlink(missing_ok=True)
