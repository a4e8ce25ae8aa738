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
    certifications { id standard certificateNumber validFrom validUntil status validToday }
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

# Status changes by the mutation the API keeps for each; offered once the API serves it.
CHANGES = {"suspend": "suspendCertification", "reinstate": "reinstateCertification",
           "withdraw": "withdrawCertification"}


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


def producer(visit: Visit, producer_id: str, change_errors: dict[str, list[str]] | None = None,
             status: int = 200) -> Response:
    values: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    general: list[str] = []
    if visit.request.method == "POST" and change_errors is None:
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
                        changes=changes, change_errors=change_errors or {})


def certification_action(visit: Visit, certification_id: str, action: str) -> Response:
    mutation = CHANGES.get(action)
    if mutation is None or not api.offers_mutation(mutation):
        return not_offered(visit)
    input_: dict[str, Any] = {"certificationId": certification_id}
    if visit.form.get("reason", "").strip():
        input_["reason"] = visit.form["reason"]
    document = (f"mutation Change($input: {mutation[0].upper()}{mutation[1:]}Input!) "
                f"{{ {mutation}(input: $input) {{ errors {{ field code message }} }} }}")
    outcome = visit.api.mutate(document, set(), input=input_)
    back = visit.form.get("producerId", "")
    if outcome.ok:
        return visit.redirect(f"/certifier/producers/{back}" if back else "/certifier",
                              flash="certification-changed")
    return producer(visit, back, change_errors={certification_id: outcome.general},
                    status=422)
