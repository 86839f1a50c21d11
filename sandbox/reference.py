"""Reference data (practice info, providers, departments, appointment types), shaped like the
real payloads in ATHENA_API.md §2. Synthetic people only; deterministic from the random source."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from sandbox import clock

Record = dict[str, Any]

FIRST_NAMES = (
    "José",
    "Zoë",
    "Øyvind",
    "娜",
    "Amara",
    "Mateo",
    "Priya",
    "Kwame",
    "Aiyana",
    "Lars",
    "Fatima",
    "Chen",
    "Siobhán",
    "Dmitri",
    "Leilani",
    "Björn",
    "Noor",
    "Tomás",
    "Ingrid",
    "Kofi",
)
LAST_NAMES = (
    "Alvarez",
    "Brennan",
    "Håland",
    "李",
    "Okafor",
    "Castillo",
    "Raman",
    "Mensah",
    "Begay",
    "Lindqvist",
    "Haddad",
    "Wu",
    "Ní Bhriain",
    "Volkov",
    "Kahale",
    "Sørensen",
    "Rahimi",
    "Peña",
    "Müller",
    "Asante",
)
SPECIALTIES = (
    ("Internal Medicine", "025"),
    ("Family Medicine", "008"),
    ("Pediatrics", "037"),
    ("Cardiology", "006"),
    ("Dermatology", "007"),
)
# (timezonename, city, state): the second department never observes DST.
ZONES = (
    ("US/Eastern", "CLAXTON", "GA"),
    ("US/Arizona", "PHOENIX", "AZ"),
    ("US/Central", "SAN ANTONIO", "TX"),
    ("US/Mountain", "DENVER", "CO"),
    ("US/Pacific", "SAN JOSE", "CA"),
)
STREETS = ("MAIN ST", "OAK AVE", "STONERIDGE CT", "RÍO GRANDE BLVD", "ELM ST", "HARBOR WAY")
# (name, duration, generic, patient, templatetypeonly)
APPOINTMENT_TYPES = (
    ("Any 15", 15, True, True, False),
    ("New Patient", 30, False, True, False),
    ("Follow Up", 15, False, True, False),
    ("Block Time", 60, False, False, True),
    ("Physical", 45, False, True, False),
    ("Télésanté Visit", 20, False, True, False),
    ("Lunch", 60, False, False, False),
    ("Any 30", 30, True, True, False),
    ("Consulta Niño", 30, False, True, False),
    ("Staff Meeting", 60, False, False, False),
    ("Annual Wellness", 40, False, True, False),
    ("Procedure", 60, False, True, False),
    ("Flu Shot", 15, False, True, False),
    ("Sick Visit", 20, False, True, False),
    ("Testt", 15, False, True, False),
    ("Open Template", 30, True, True, True),
)


@dataclass(frozen=True)
class Reference:
    """One practice's reference data as served (records are never mutated after creation)."""

    practiceinfo: Record
    providers: tuple[Record, ...]
    departments: tuple[Record, ...]
    hidden_department_ids: frozenset[str]
    department_providers: dict[str, tuple[int, ...]]
    appointmenttypes: tuple[Record, ...]


def practiceinfo(practice_id: str) -> Record:
    """The /practiceinfo record of a practice."""
    named = {"195900": "athenahealth MDP Sandbox", "1128700": "MDP-Hospital Test 1128700"}
    return {
        "practiceid": practice_id,
        "name": named.get(practice_id, f"athena-sync Sandbox Practice {practice_id}"),
        "golivedate": "09/14/2015",
        "experiencemode": "STREAMLINEDONLY",
        "hasclinicals": True,
        "hascommunicator": True,
        "hascollector": True,
        "iscoordinatorsender": False,
        "iscoordinatorreceiver": False,
    }


def _provider(rng: random.Random, index: int, provider_id: int, home: str) -> Record:
    first = FIRST_NAMES[index % len(FIRST_NAMES)]
    last = LAST_NAMES[(index * 7 + rng.randrange(3)) % len(LAST_NAMES)]
    nurse = index % 4 == 3
    record: Record = {
        "providerid": provider_id,
        "firstname": first,
        "lastname": last,
        "displayname": f"{first} {last}, {'NP' if nurse else 'MD'}",
    }
    if index % 4 == 2:  # sparse record: names only, as often in the real sandbox
        return record
    specialty, specialty_id = SPECIALTIES[rng.randrange(len(SPECIALTIES))]
    record.update(
        specialty=specialty,
        specialtyid=specialty_id if rng.random() < 0.5 else int(specialty_id),
        providertype="NURSE PRACTITIONER, SUPERVISING(NP,S)" if nurse else "MD",
        providertypeid="NP" if nurse else "MD",
        entitytype="Person",
        billable=True,
        schedulingname=f"{first[0]}{last}".lower().replace(" ", "")[:12],
        homedepartment=home,
        hideinportal=index % 5 == 4,
        acceptingnewpatients=rng.random() < 0.7,
        createencounteroncheckin=rng.random() < 0.8,
        providergrouplist=[str(1 + index % 2)],
        sex=rng.choice(("F", "M")),
    )
    if rng.random() < 0.6:
        record["npi"] = 1_000_000_000 + rng.randrange(999_999_999)
    return record


def providers(rng: random.Random, count: int, dept_names: list[str]) -> list[Record]:
    """Providers with int ids; some have alias ids (``otherprovideridlist``), some are sparse."""
    result: list[Record] = []
    next_id = 20 + rng.randrange(80)
    for index in range(count):
        record = _provider(rng, index, next_id, dept_names[index % len(dept_names)])
        if index % 5 == 1:
            record["otherprovideridlist"] = [str(next_id + 1)]
            next_id += 1
        if "providertype" in record and record["providertypeid"] == "NP" and result:
            record["supervisingproviderid"] = result[0]["providerid"]
        result.append(record)
        next_id += 1 + rng.randrange(3)
    if count >= 3:
        lab = result[-1]
        lab.clear()
        lab.update(
            providerid=next_id,
            lastname="LAB",
            firstname="GENERIC",
            displayname="LAB, GENERIC",
            entitytype="Non-person entity",
            billable=False,
            providertype="MD",
            providertypeid="MD",
            hideinportal=True,
        )
    return result


def departments(rng: random.Random, count: int, anchor: dt.date) -> list[Record]:
    """Departments in several US time zones; ids are strings."""
    result: list[Record] = []
    next_id = 1
    for index in range(count):
        zone, city, state = ZONES[index % len(ZONES)]
        current, standard = clock.offsets(zone, anchor)
        street = STREETS[index % len(STREETS)]
        record: Record = {
            "departmentid": str(next_id),
            "name": f"{street} ({'HUB' if index == 0 else city})",
            "patientdepartmentname": f"{city.title()} Office" if index != 2 else "Clínica Zoë",
            "address": f"{1000 + rng.randrange(9000)} {street}",
            "city": city,
            "state": state,
            "zip": f"{rng.randrange(10000, 99999)}",
            "phone": f"(555) {rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}",
            "timezone": current,
            "timezoneoffset": standard,
            "timezonename": zone,
            "doesnotobservedst": not clock.observes_dst(zone, anchor.year),
            "providergroupid": str(1 + index % 2),
            "providergroupname": ("Downtown Health Group", "Øresund Family Care")[index % 2],
            "chartsharinggroupid": "1",
            "placeofservicetypeid": "11",
            "placeofservicetypename": "OFFICE",
            "servicedepartment": True,
            "ishospitaldepartment": False,
            "clinicals": "ON",
            "latitude": f"{30 + rng.random() * 10:.6f}",
            "longitude": f"{-120 + rng.random() * 40:.6f}",
        }
        if index % 3 == 0:
            record["fax"] = f"(555) {rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}"
        result.append(record)
        next_id += 1 + rng.randrange(20)
    return result


def hidden_departments(count: int) -> list[int]:
    """Indexes of portal-hidden departments (omitted unless showalldepartments=true)."""
    hidden = {i for i in range(count) if i % 4 == 3}
    if count >= 5:
        hidden.add(count - 1)
    return sorted(hidden)


def appointment_types(rng: random.Random, count: int) -> list[Record]:
    """Appointment types with int ids, generic/patient/templatetypeonly flags."""
    result: list[Record] = []
    next_id = 2 + rng.randrange(10)
    for index in range(count):
        name, duration, generic, patient, template = APPOINTMENT_TYPES[
            index % len(APPOINTMENT_TYPES)
        ]
        if index >= len(APPOINTMENT_TYPES):
            name = f"test service {rng.randrange(10000, 99999)}"
        result.append(
            {
                "appointmenttypeid": next_id,
                "name": name,
                "shortname": "".join(ch for ch in name.upper() if ch.isalnum())[:4],
                "duration": duration,
                "patientdisplayname": name if patient else "",
                "generic": generic,
                "patient": patient,
                "templatetypeonly": template,
                "createencounteroncheckin": patient and not generic,
            }
        )
        next_id += 1 + rng.randrange(15)
    return result


def empty(practice_id: str) -> Reference:
    """A practice that exists but holds nothing yet (like a fresh preview practice)."""
    return Reference(
        practiceinfo=practiceinfo(practice_id),
        providers=(),
        departments=(),
        hidden_department_ids=frozenset(),
        department_providers={},
        appointmenttypes=(),
    )


def build(
    rng: random.Random, practice_id: str, sizes: tuple[int, int, int], anchor: dt.date
) -> Reference:
    """All reference data of one practice: sizes are (departments, providers, types)."""
    n_departments, n_providers, n_types = sizes
    depts = departments(rng, n_departments, anchor)
    hidden = frozenset(depts[i]["departmentid"] for i in hidden_departments(n_departments))
    provs = providers(rng, n_providers, [d["name"] for d in depts])
    assigned: dict[str, tuple[int, ...]] = {}
    for d_index, dept in enumerate(depts):
        ids = [
            p["providerid"] for p_index, p in enumerate(provs) if p_index % n_departments == d_index
        ]
        ids += [p["providerid"] for p_index, p in enumerate(provs) if p_index % 3 == d_index % 3]
        assigned[dept["departmentid"]] = tuple(sorted(set(ids)))
    return Reference(
        practiceinfo=practiceinfo(practice_id),
        providers=tuple(provs),
        departments=tuple(depts),
        hidden_department_ids=hidden,
        department_providers=assigned,
        appointmenttypes=tuple(appointment_types(rng, n_types)),
    )
