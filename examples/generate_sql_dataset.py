"""Generate the project's own text-to-SQL example data set, in the sql-create-context format.

Each row is {"question", "context", "answer"}: the context holds CREATE TABLE statements, the
answer one SQLite query. Table and column names vary between rows (the same idea is `staff` in one
row and `employees` in another, `salary` here and `annual_salary` there), so a model has to read the
schema to answer; the SQL style never varies (upper-case keywords, single-quoted strings, no
aliases, no trailing semicolon), so a small model can learn it from a few hundred rows.

    python examples/generate_sql_dataset.py --rows 1000 --seed 7 --output examples/data/sql-example.jsonl

The output is a pure function of --rows and --seed.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TextColumn:
    names: tuple[str, ...]  # spellings a schema may use; the question speaks of names[0] in words
    values: tuple[str, ...]
    column_type: str = "TEXT"


@dataclass(frozen=True)
class NumberColumn:
    names: tuple[str, ...]
    low: int
    high: int
    column_type: str = "INTEGER"  # REAL columns get one decimal place


@dataclass(frozen=True)
class Entity:
    tables: tuple[str, ...]  # table name spellings
    singular: str
    plural: str
    label: TextColumn  # the column that names a row (name, title ...)
    texts: tuple[TextColumn, ...]
    numbers: tuple[NumberColumn, ...]


CITIES = ("Boston", "Denver", "Austin", "Seattle", "Chicago", "Miami", "Portland", "Atlanta")
COUNTRIES = ("France", "Japan", "Brazil", "Canada", "Kenya", "Norway", "India", "Mexico")

ENTITIES = (
    Entity(
        ("employees", "staff", "employee"),
        "employee",
        "employees",
        TextColumn(
            ("name", "full_name", "employee_name"),
            ("Alice Moreau", "Bob Chen", "Carla Diaz", "Dev Patel", "Emma Stone", "Farid Haddad"),
        ),
        (
            TextColumn(("department", "dept_name"), ("Sales", "Finance", "Research", "Support", "Legal")),
            TextColumn(("city", "office_city"), CITIES),
            TextColumn(("job_title", "position"), ("Engineer", "Manager", "Analyst", "Clerk"), "VARCHAR"),
        ),
        (
            NumberColumn(("salary", "annual_salary"), 30000, 150000),
            NumberColumn(("age",), 21, 65),
            NumberColumn(("years_of_service", "tenure"), 0, 35),
        ),
    ),
    Entity(
        ("products", "product", "items"),
        "product",
        "products",
        TextColumn(
            ("product_name", "name", "title"),
            ("Desk Lamp", "Office Chair", "Water Bottle", "Notebook", "Headphones", "Backpack"),
        ),
        (
            TextColumn(("category", "product_category"), ("Furniture", "Electronics", "Outdoor", "Stationery")),
            TextColumn(("brand", "maker"), ("Acme", "Globex", "Initech", "Umbrella"), "VARCHAR"),
            TextColumn(("color",), ("red", "blue", "black", "white", "green")),
        ),
        (
            NumberColumn(("price", "unit_price"), 5, 900, "REAL"),
            NumberColumn(("stock", "quantity_in_stock"), 0, 500),
            NumberColumn(("weight_grams", "weight"), 50, 5000),
        ),
    ),
    Entity(
        ("students", "student", "pupils"),
        "student",
        "students",
        TextColumn(
            ("name", "student_name"), ("Liam Novak", "Mia Rossi", "Noah Kim", "Olivia Park", "Omar Ali", "Sofia Lind")
        ),
        (
            TextColumn(("major", "field_of_study"), ("Biology", "History", "Physics", "Economics", "Art")),
            TextColumn(("hometown", "home_city"), CITIES),
            TextColumn(("advisor", "advisor_name"), ("Dr Reyes", "Dr Walsh", "Dr Okafor", "Dr Lin"), "VARCHAR"),
        ),
        (
            NumberColumn(("gpa", "grade_average"), 2, 4, "REAL"),
            NumberColumn(("age",), 17, 30),
            NumberColumn(("credits", "credits_earned"), 0, 140),
        ),
    ),
    Entity(
        ("books", "book", "titles"),
        "book",
        "books",
        TextColumn(
            ("title", "book_title"),
            ("Silent Harbor", "The Long Road", "Paper Moons", "Deep Roots", "Glass City", "Winter Light"),
        ),
        (
            TextColumn(("author", "author_name"), ("Ana Ruiz", "Ben Okri", "Chloe Marsh", "Dan Weber")),
            TextColumn(("genre",), ("Mystery", "Fantasy", "Biography", "Romance", "Poetry")),
            TextColumn(("publisher",), ("Penguin", "Harper", "Orbit", "Vintage"), "VARCHAR"),
        ),
        (
            NumberColumn(("pages", "page_count"), 90, 900),
            NumberColumn(("publication_year", "year_published"), 1950, 2024),
            NumberColumn(("rating", "average_rating"), 1, 5, "REAL"),
        ),
    ),
    Entity(
        ("flights", "flight"),
        "flight",
        "flights",
        TextColumn(("flight_number", "flight_code"), ("AA101", "BA202", "LH303", "AF404", "KL505", "DL606"), "VARCHAR"),
        (
            TextColumn(("origin", "departure_city"), CITIES),
            TextColumn(("destination", "arrival_city"), CITIES),
            TextColumn(("airline", "carrier"), ("Delta", "United", "Lufthansa", "Emirates")),
        ),
        (
            NumberColumn(("distance", "distance_km"), 200, 9000),
            NumberColumn(("duration_minutes", "duration"), 45, 900),
            NumberColumn(("seats", "capacity"), 50, 400),
        ),
    ),
    Entity(
        ("hospitals", "hospital", "clinics"),
        "hospital",
        "hospitals",
        TextColumn(
            ("name", "hospital_name"), ("Saint Mary", "General West", "Riverside", "Hillcrest", "Northgate", "Lakeview")
        ),
        (
            TextColumn(("city", "location"), CITIES),
            TextColumn(("specialty", "main_specialty"), ("Cardiology", "Oncology", "Pediatrics", "Neurology")),
            TextColumn(("ownership", "owner_type"), ("Public", "Private", "Charity"), "VARCHAR"),
        ),
        (
            NumberColumn(("beds", "bed_count"), 20, 1200),
            NumberColumn(("doctors", "number_of_doctors"), 5, 600),
            NumberColumn(("founded", "year_founded"), 1850, 2020),
        ),
    ),
    Entity(
        ("songs", "song", "tracks"),
        "song",
        "songs",
        TextColumn(
            ("title", "song_title"), ("Blue Skies", "Night Drive", "Falling Leaves", "Neon Heart", "Open Road", "Tidal")
        ),
        (
            TextColumn(("artist", "artist_name"), ("Luna Vega", "The Pines", "Max Rowe", "Sky Harbor")),
            TextColumn(("genre", "style"), ("Pop", "Rock", "Jazz", "Folk", "Electronic")),
            TextColumn(("album",), ("First Light", "Echoes", "Horizons", "Static"), "VARCHAR"),
        ),
        (
            NumberColumn(("length_seconds", "duration_seconds"), 120, 480),
            NumberColumn(("plays", "play_count"), 100, 90000),
            NumberColumn(("release_year", "year"), 1970, 2024),
        ),
    ),
    Entity(
        ("cities", "city", "towns"),
        "city",
        "cities",
        TextColumn(("name", "city_name"), ("Lyon", "Osaka", "Recife", "Calgary", "Mombasa", "Bergen")),
        (
            TextColumn(("country", "country_name"), COUNTRIES),
            TextColumn(("region", "province"), ("North", "South", "East", "West", "Central")),
            TextColumn(("mayor", "mayor_name"), ("J. Smith", "K. Tanaka", "L. Souza", "M. Berg"), "VARCHAR"),
        ),
        (
            NumberColumn(("population",), 10000, 9000000),
            NumberColumn(("area_km2", "area"), 10, 3000, "REAL"),
            NumberColumn(("elevation", "elevation_m"), 0, 2500),
        ),
    ),
    Entity(
        ("orders", "purchase_orders", "sales"),
        "order",
        "orders",
        TextColumn(
            ("order_code", "reference"), ("ORD-17", "ORD-23", "ORD-42", "ORD-58", "ORD-61", "ORD-99"), "VARCHAR"
        ),
        (
            TextColumn(("customer", "customer_name"), ("Acme Corp", "Blue Fin", "Crestline", "Dunmore")),
            TextColumn(("status", "order_status"), ("shipped", "pending", "cancelled", "delivered")),
            TextColumn(("channel", "sales_channel"), ("web", "store", "phone")),
        ),
        (
            NumberColumn(("total", "order_total"), 10, 5000, "REAL"),
            NumberColumn(("items", "item_count"), 1, 40),
            NumberColumn(("discount", "discount_percent"), 0, 50),
        ),
    ),
    Entity(
        ("teams", "team", "clubs"),
        "team",
        "teams",
        TextColumn(("name", "team_name"), ("Red Hawks", "Blue Whales", "Iron Bears", "Swift Foxes", "Storm", "Comets")),
        (
            TextColumn(("city", "home_city"), CITIES),
            TextColumn(("coach", "coach_name"), ("P. Evans", "R. Silva", "S. Ito", "T. Moss")),
            TextColumn(("league", "division"), ("Premier", "First", "Second"), "VARCHAR"),
        ),
        (
            NumberColumn(("wins",), 0, 40),
            NumberColumn(("losses",), 0, 40),
            NumberColumn(("founded", "founded_year"), 1880, 2015),
        ),
    ),
    Entity(
        ("movies", "film", "films"),
        "movie",
        "movies",
        TextColumn(
            ("title", "movie_title"),
            ("Dark Water", "Last Summer", "Red Planet", "Quiet Hours", "Sunrise", "The Vault"),
            "VARCHAR",
        ),
        (
            TextColumn(("director", "director_name"), ("N. Bauer", "O. Adeyemi", "P. Costa", "Q. Hale")),
            TextColumn(("genre",), ("Drama", "Comedy", "Horror", "Action", "Documentary")),
            TextColumn(("language", "original_language"), ("English", "French", "Korean", "Spanish")),
        ),
        (
            NumberColumn(("runtime", "runtime_minutes"), 70, 200),
            NumberColumn(("budget", "budget_millions"), 1, 300, "REAL"),
            NumberColumn(("release_year", "year"), 1960, 2024),
        ),
    ),
    Entity(
        ("vehicles", "cars", "fleet"),
        "vehicle",
        "vehicles",
        TextColumn(("plate", "license_plate"), ("KX-104", "LM-220", "NP-318", "QR-407", "ST-512", "UV-629"), "VARCHAR"),
        (
            TextColumn(("make", "manufacturer"), ("Toyota", "Ford", "Volvo", "Kia", "Fiat")),
            TextColumn(("fuel", "fuel_type"), ("petrol", "diesel", "electric", "hybrid")),
            TextColumn(("color", "paint_color"), ("red", "silver", "black", "white")),
        ),
        (
            NumberColumn(("mileage", "odometer_km"), 0, 300000),
            NumberColumn(("model_year", "year"), 1995, 2025),
            NumberColumn(("price", "list_price"), 3000, 90000, "REAL"),
        ),
    ),
)


@dataclass(frozen=True)
class Schema:
    """One entity as spelled in one row: a table name and the columns it happens to have."""

    entity: Entity
    table: str
    label: tuple[TextColumn, str]
    texts: tuple[tuple[TextColumn, str], ...]
    numbers: tuple[tuple[NumberColumn, str], ...]

    def create_table(self) -> str:
        columns = [self.label, *self.texts, *self.numbers]
        rng = random.Random(self.table + "".join(name for _, name in columns))
        rng.shuffle(columns)
        parts = ", ".join(f"{name} {column.column_type}" for column, name in columns)
        return f"CREATE TABLE {self.table} ({parts})"


def words(name: str) -> str:
    return name.replace("_", " ")


def sql_value(column: TextColumn | NumberColumn, value) -> str:
    return "'" + value.replace("'", "''") + "'" if isinstance(column, TextColumn) else str(value)


def pick_number(column: NumberColumn, rng: random.Random):
    if column.column_type == "REAL":
        return round(rng.uniform(column.low, column.high), 1)
    return rng.randint(column.low, column.high)


def pick_schema(rng: random.Random) -> Schema:
    entity = rng.choice(ENTITIES)
    texts = rng.sample(entity.texts, rng.randint(1, len(entity.texts)))
    numbers = rng.sample(entity.numbers, rng.randint(1, len(entity.numbers)))
    return Schema(
        entity=entity,
        table=rng.choice(entity.tables),
        label=(entity.label, rng.choice(entity.label.names)),
        texts=tuple((column, rng.choice(column.names)) for column in texts),
        numbers=tuple((column, rng.choice(column.names)) for column in numbers),
    )


COMPARISONS = (
    ("greater than", ">"),
    ("less than", "<"),
    ("at least", ">="),
    ("at most", "<="),
    ("more than", ">"),
    ("below", "<"),
)
AGGREGATES = (
    ("average", "AVG"),
    ("minimum", "MIN"),
    ("maximum", "MAX"),
    ("total", "SUM"),
    ("lowest", "MIN"),
    ("highest", "MAX"),
)


def make_question(schema: Schema, rng: random.Random) -> tuple[str, str]:
    """One (question, SQL) pair about ``schema``; the template is picked at random."""
    table, e = schema.table, schema.entity
    label_column, label = schema.label
    text_column, text = rng.choice(schema.texts)
    text_value = rng.choice(text_column.values)
    number_column, number = rng.choice(schema.numbers)
    number_value = pick_number(number_column, rng)
    phrase, op = rng.choice(COMPARISONS)
    agg_word, agg = rng.choice(AGGREGATES)
    text_literal = sql_value(text_column, text_value)
    label_value = rng.choice(label_column.values)
    label_literal = sql_value(label_column, label_value)
    other_text_column, other_text = rng.choice(schema.texts)
    templates = [
        lambda: (
            f"What is the {words(text)} of the {e.singular} whose {words(label)} is {label_value}?",
            f"SELECT {text} FROM {table} WHERE {label} = {label_literal}",
        ),
        lambda: (
            f"What is the {words(number)} of the {e.singular} with {words(label)} {label_value}?",
            f"SELECT {number} FROM {table} WHERE {label} = {label_literal}",
        ),
        lambda: (
            f"List the {words(label)} of {e.plural} with {words(number)} {phrase} {number_value}.",
            f"SELECT {label} FROM {table} WHERE {number} {op} {number_value}",
        ),
        lambda: (
            f"How many {e.plural} have {words(text)} {text_value}?",
            f"SELECT COUNT(*) FROM {table} WHERE {text} = {text_literal}",
        ),
        lambda: (f"How many {e.plural} are there?", f"SELECT COUNT(*) FROM {table}"),
        lambda: (
            f"How many {e.plural} have a {words(number)} {phrase} {number_value}?",
            f"SELECT COUNT(*) FROM {table} WHERE {number} {op} {number_value}",
        ),
        lambda: (f"What is the {agg_word} {words(number)} of all {e.plural}?", f"SELECT {agg}({number}) FROM {table}"),
        lambda: (
            f"What is the {agg_word} {words(number)} of {e.plural} whose {words(text)} is {text_value}?",
            f"SELECT {agg}({number}) FROM {table} WHERE {text} = {text_literal}",
        ),
        lambda: (
            f"Which {e.singular} has the highest {words(number)}? Give its {words(label)}.",
            f"SELECT {label} FROM {table} ORDER BY {number} DESC LIMIT 1",
        ),
        lambda: (
            f"Which {e.singular} has the lowest {words(number)}? Give its {words(label)}.",
            f"SELECT {label} FROM {table} ORDER BY {number} LIMIT 1",
        ),
        lambda: (
            f"List the {words(label)} of the {(k := rng.randint(2, 5))} {e.plural} with the highest {words(number)}.",
            f"SELECT {label} FROM {table} ORDER BY {number} DESC LIMIT {k}",
        ),
        lambda: (
            f"How many {e.plural} are there for each {words(text)}?",
            f"SELECT {text}, COUNT(*) FROM {table} GROUP BY {text}",
        ),
        lambda: (
            f"What is the {agg_word} {words(number)} for each {words(text)}?",
            f"SELECT {text}, {agg}({number}) FROM {table} GROUP BY {text}",
        ),
        lambda: (
            f"List the {words(label)} of {e.plural} whose {words(text)} is {text_value} "
            f"and whose {words(number)} is {phrase} {number_value}.",
            f"SELECT {label} FROM {table} WHERE {text} = {text_literal} AND {number} {op} {number_value}",
        ),
        lambda: (
            f"List all distinct {words(other_text)} values of {e.plural}.",
            f"SELECT DISTINCT {other_text} FROM {table}",
        ),
        lambda: (
            f"Show the {words(label)} and {words(number)} of {e.plural} whose {words(text)} is {text_value}.",
            f"SELECT {label}, {number} FROM {table} WHERE {text} = {text_literal}",
        ),
        lambda: (
            f"List the {words(label)} of all {e.plural} sorted by {words(number)} in descending order.",
            f"SELECT {label} FROM {table} ORDER BY {number} DESC",
        ),
        lambda: (
            f"Which {words(text)} values have more than {(n := rng.randint(1, 4))} {e.plural}?",
            f"SELECT {text} FROM {table} GROUP BY {text} HAVING COUNT(*) > {n}",
        ),
    ]
    if other_text != text:
        other_value = rng.choice(other_text_column.values)
        templates.append(
            lambda: (
                f"What is the {words(label)} of {e.plural} whose {words(text)} is {text_value} "
                f"or whose {words(other_text)} is {other_value}?",
                f"SELECT {label} FROM {table} WHERE {text} = {text_literal} "
                f"OR {other_text} = {sql_value(other_text_column, other_value)}",
            )
        )
    return rng.choice(templates)()


def make_row(rng: random.Random) -> dict:
    schema = pick_schema(rng)
    tables = [schema]
    if rng.random() < 0.35:  # a second, unrelated table the question does not need
        other = pick_schema(rng)
        if other.table != schema.table:
            tables.insert(rng.randint(0, 1), other)
    question, answer = make_question(schema, rng)
    context = "; ".join(table.create_table() for table in tables)
    return {"question": question, "context": context, "answer": answer}


def generate(rows: int, seed: int) -> list[dict]:
    """``rows`` distinct rows; the same arguments always give the same rows."""
    rng = random.Random(seed)
    seen: set[tuple[str, str]] = set()
    out: list[dict] = []
    attempts = 0
    while len(out) < rows:
        attempts += 1
        if attempts > rows * 50:
            raise RuntimeError(f"could not generate {rows} distinct rows (got {len(out)})")
        row = make_row(rng)
        key = (row["question"], row["context"])
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def write_jsonl(rows: list[dict], output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000, help="number of rows (default 1000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--output", type=Path, default=Path("examples/data/sql-example.jsonl"))
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error(f"--rows must be at least 1, got {args.rows}")
    write_jsonl(generate(args.rows, args.seed), args.output)
    print(f"wrote {args.rows} rows to {args.output}")


if __name__ == "__main__":
    main()
