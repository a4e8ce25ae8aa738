"""Run by the outbox crash test in its own process: commit a state change, then die.

It registers a producer through the certification service's own entrypoint (so the producer
row and its producer_registered outbox row commit together) and is killed with SIGKILL before
anything could publish the event.
"""

import eventlet

eventlet.monkey_patch()

import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

from nameko.testing.services import worker_factory  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from services.certification import store  # noqa: E402
from services.certification.service import CertificationService  # noqa: E402
from shared.caller import Caller, Role  # noqa: E402
from shared.clock import Now  # noqa: E402
from shared.persistence import ServiceDatabase, make_engine  # noqa: E402

url, name = sys.argv[1], sys.argv[2]
database = ServiceDatabase(sessionmaker(make_engine(url), expire_on_commit=False),
                           store.messaging)
service = worker_factory(CertificationService, db=database, clock=Now(),
                         caller=Caller(subject="crash-test", role=Role.CERTIFIER))
producer = service.register_producer({"name": name, "country": "CO", "region": "Cauca"})
print(json.dumps(producer), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
