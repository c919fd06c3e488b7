#!/usr/bin/env python3
"""Varied customers, one JSON body a line, for training the record dictionary
(assets/zstd/README.md) and for measuring the store with data that is not one name repeated.

    python3 customers.py 20000 > /tmp/customers.ndjson      # needs Faker (pip install Faker)

Deterministic for a given count: seeded.
"""

import json
import random
import sys

from faker import Faker

LOCALES = ["en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "en_US", "en_IE", "pt_PT"]
COUNTRY = {"en_GB": "GB", "de_DE": "DE", "fr_FR": "FR", "es_ES": "ES", "it_IT": "IT",
           "nl_NL": "NL", "pl_PL": "PL", "en_US": "US", "en_IE": "IE", "pt_PT": "PT"}
FUNDS = ["Salary", "Savings", "Business income", "Pension", "Inheritance", "Investments",
         "Sale of property", "Dividends"]


def customer(fake: Faker, country: str, n: int, rnd: random.Random) -> dict:
    business = rnd.random() < 0.25
    body: dict = {"type": "SOLE_TRADER" if business else "INDIVIDUAL"}
    if business:
        body["full_name"] = fake.company()
        if rnd.random() < 0.5:
            body["trading_name"] = fake.company()
    else:
        body["full_name"] = fake.name()
    if rnd.random() < 0.9:
        body["email"] = fake.unique.email()
    if rnd.random() < 0.8:
        body["external_id"] = rnd.choice(["crm-", "sf-", "hs-", "C", ""]) + str(100000 + n)
    if rnd.random() < 0.8:
        body["phone"] = fake.phone_number()
    if rnd.random() < 0.85:
        risk: dict = {"country_of_residence": country}
        if not business and rnd.random() < 0.8:
            risk["occupation"] = fake.job()[:60]
        if rnd.random() < 0.8:
            risk["source_of_funds"] = rnd.choice(FUNDS)
        if rnd.random() < 0.7:
            risk["expected_monthly_volume"] = rnd.choice([500, 1000, 2500, 5000, 10000, 50000]) \
                + rnd.randrange(0, 500)
        if rnd.random() < 0.6:
            risk["is_pep"] = rnd.random() < 0.03
        body["risk"] = risk
    return body


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    rnd = random.Random(18)
    fakes = {}
    for loc in LOCALES:
        fakes[loc] = Faker(loc)
        fakes[loc].seed_instance(rnd.randrange(1 << 30))
    out = sys.stdout
    for n in range(count):
        loc = rnd.choice(LOCALES)
        out.write(json.dumps(customer(fakes[loc], COUNTRY[loc], n, rnd), ensure_ascii=False))
        out.write("\n")


if __name__ == "__main__":
    main()
