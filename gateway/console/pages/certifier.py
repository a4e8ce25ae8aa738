"""A certifier's pages: cooperatives and their certifications; register a cooperative, grant a
certification, and suspend, reinstate or withdraw one with a reason.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from gateway.console import api
from gateway.console.pages.access import not_offered, refused
from gateway.console.web import Visit

STANDARDS = ["FAIRMINED", "FAIRMINED_ECOLOGICAL", "CRAFT"]

PRODUCERS = """
query Producers($after: String) {
  producers(first: 50, after: $after) {
    edges { node {
      id name country region
      certifications { id standard certificateNumber validUntil status validToday }
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""

PRODUCER = """
query Producer($id: ID!) {
  producer(id: $id) {
    id name country region
    certifications {
      id standard certificateNumber validFrom validUntil status validToday
      history { version fromStatus toStatus at actor reason }
    }
  }
}"""

REGISTER = """
mutation Register($input: RegisterProducerInput!) {
  registerProducer(input: $input) { producer { id } errors { field code message } }
}"""

GRANT = """
mutation Grant($input: GrantCertificationInput!) {
  grantCertification(input: $input) { producer { id } errors { field code message } }
}"""

SUSPEND = """
mutation Suspend($input: CertificationChangeInput!) {
  suspendCertification(input: $input) { producer { id } errors { field code message } }
}"""

REINSTATE = """
mutation Reinstate($input: CertificationChangeInput!) {
  reinstateCertification(input: $input) { producer { id } errors { field code message } }
}"""

WITHDRAW = """
mutation Withdraw($input: CertificationChangeInput!) {
  withdrawCertification(input: $input) { producer { id } errors { field code message } }
}"""

# Status changes: the mutation the API keeps for each (offered once the API serves it), and
# the document that runs it.
CHANGES = {"suspend": "suspendCertification", "reinstate": "reinstateCertification",
           "withdraw": "withdrawCertification"}
CHANGE_DOCUMENTS = {"suspend": SUSPEND, "reinstate": REINSTATE, "withdraw": WITHDRAW}
# The API's error naming the reason is shown beside the reason field of the form that sent
# it; one naming the certification itself (say, reinstating a withdrawn one) beside its button.
CHANGE_FIELDS = {"reason", "certificationId"}


def home(visit: Visit) -> Response:
    values: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    general: list[str] = []
    if visit.request.method == "POST":
        values = dict(visit.form)
        outcome = visit.api.mutate(REGISTER, {"name", "country", "region"}, input={
            "name": values.get("name", ""), "country": values.get("country", "").strip().upper(),
            "region": values.get("region", "")})
        if outcome.ok:
            return visit.redirect(f"/certifier/producers/{outcome.result['id']}",
                                  flash="producer-registered")
        errors, general = outcome.by_field, outcome.general
    data = visit.api.query(PRODUCERS, after=visit.request.args.get("after") or None)
    return visit.render("certifier/home.html", status=422 if errors or general else 200,
                        producers=[edge["node"] for edge in data["producers"]["edges"]],
                        page_info=data["producers"]["pageInfo"], values=values,
                        errors=errors, general=general)


def producer(visit: Visit, producer_id: str, failed: tuple[str, str] | None = None,
             change_errors: dict[str, list[str]] | None = None,
             change_general: list[str] | None = None) -> Response:
    """A cooperative's certifications with their history and what can be done to each, and
    the form to grant one. `failed` is the (certification, action) whose form the API
    refused."""
    values: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    general: list[str] = []
    status = 422 if failed else 200
    if visit.request.method == "POST" and failed is None:
        values = dict(visit.form)
        outcome = visit.api.mutate(
            GRANT, {"standard", "certificateNumber", "validFrom", "validUntil"}, input={
                "producerId": producer_id, "standard": values.get("standard", ""),
                "certificateNumber": values.get("certificateNumber", ""),
                "validFrom": values.get("validFrom", ""),
                "validUntil": values.get("validUntil", "")})
        if outcome.ok:
            return visit.redirect(f"/certifier/producers/{producer_id}",
                                  flash="certification-granted")
        errors, general = outcome.by_field, outcome.general
        status = 422
    found = visit.api.query(PRODUCER, id=producer_id)["producer"]
    if found is None:
        return refused(visit, 404, "NOT_FOUND")
    changes = {name: mutation for name, mutation in CHANGES.items()
               if api.offers_mutation(mutation)}
    return visit.render("certifier/producer.html", status=status, producer=found,
                        standards=STANDARDS, values=values, errors=errors, general=general,
                        changes=changes, failed=failed, change_errors=change_errors or {},
                        change_general=change_general or [],
                        change_values=dict(visit.form) if failed else {})


def certification_action(visit: Visit, producer_id: str, certification_id: str,
                         action: str) -> Response:
    if visit.request.method != "POST":
        # The address a refused form was shown at (the language links lead back to it).
        return visit.redirect(f"/certifier/producers/{producer_id}")
    mutation = CHANGES.get(action)
    if mutation is None or not api.offers_mutation(mutation):
        return not_offered(visit)
    input_: dict[str, Any] = {"certificationId": certification_id}
    if visit.form.get("reason", "").strip():
        input_["reason"] = visit.form["reason"].strip()
    outcome = visit.api.mutate(CHANGE_DOCUMENTS[action], CHANGE_FIELDS, input=input_)
    if outcome.ok:
        return visit.redirect(f"/certifier/producers/{producer_id}#certification-"
                              f"{certification_id}", flash="certification-changed")
    return producer(visit, producer_id, failed=(certification_id, action),
                    change_errors=outcome.by_field, change_general=outcome.general)
