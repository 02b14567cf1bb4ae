"""A small table of real French communes used to place synthetic patients.

Codes are INSEE commune codes (Code officiel géographique).  The postal code is
the main one of the commune (large cities have several).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["COMMUNES", "FOREIGN_COUNTRIES", "Commune", "ForeignCountry"]


class Commune(NamedTuple):
    """A French commune: INSEE code, name, main postal code and department code."""

    insee: str
    name: str
    postal_code: str
    department: str


class ForeignCountry(NamedTuple):
    """A country as coded by INSEE for births abroad ("99" + ``code`` in the NIR)."""

    code: str
    name: str
    iso2: str


COMMUNES: tuple[Commune, ...] = (
    # Île-de-France
    Commune("75056", "Paris", "75001", "75"),
    Commune("78646", "Versailles", "78000", "78"),
    Commune("92012", "Boulogne-Billancourt", "92100", "92"),
    Commune("93066", "Saint-Denis", "93200", "93"),
    Commune("94028", "Créteil", "94000", "94"),
    Commune("77288", "Meaux", "77100", "77"),
    # North and east
    Commune("59350", "Lille", "59000", "59"),
    Commune("62041", "Arras", "62000", "62"),
    Commune("80021", "Amiens", "80000", "80"),
    Commune("51454", "Reims", "51100", "51"),
    Commune("67482", "Strasbourg", "67000", "67"),
    Commune("68224", "Mulhouse", "68100", "68"),
    Commune("57463", "Metz", "57000", "57"),
    Commune("54395", "Nancy", "54000", "54"),
    Commune("25056", "Besançon", "25000", "25"),
    Commune("21231", "Dijon", "21000", "21"),
    Commune("10387", "Troyes", "10000", "10"),
    # West
    Commune("76540", "Rouen", "76000", "76"),
    Commune("76351", "Le Havre", "76600", "76"),
    Commune("14118", "Caen", "14000", "14"),
    Commune("35238", "Rennes", "35000", "35"),
    Commune("29019", "Brest", "29200", "29"),
    Commune("29232", "Quimper", "29000", "29"),
    Commune("56260", "Vannes", "56000", "56"),
    Commune("44109", "Nantes", "44000", "44"),
    Commune("49007", "Angers", "49000", "49"),
    Commune("72181", "Le Mans", "72000", "72"),
    Commune("37261", "Tours", "37000", "37"),
    Commune("45234", "Orléans", "45000", "45"),
    Commune("86194", "Poitiers", "86000", "86"),
    Commune("17300", "La Rochelle", "17000", "17"),
    Commune("79191", "Niort", "79000", "79"),
    # Centre and south-west
    Commune("87085", "Limoges", "87000", "87"),
    Commune("63113", "Clermont-Ferrand", "63000", "63"),
    Commune("18033", "Bourges", "18000", "18"),
    Commune("33063", "Bordeaux", "33000", "33"),
    Commune("64445", "Pau", "64000", "64"),
    Commune("31555", "Toulouse", "31000", "31"),
    Commune("81004", "Albi", "81000", "81"),
    Commune("12202", "Rodez", "12000", "12"),
    Commune("65440", "Tarbes", "65000", "65"),
    # South-east
    Commune("34172", "Montpellier", "34000", "34"),
    Commune("30189", "Nîmes", "30000", "30"),
    Commune("66136", "Perpignan", "66000", "66"),
    Commune("11069", "Carcassonne", "11000", "11"),
    Commune("13055", "Marseille", "13001", "13"),
    Commune("13001", "Aix-en-Provence", "13090", "13"),
    Commune("83137", "Toulon", "83000", "83"),
    Commune("06088", "Nice", "06000", "06"),
    Commune("84007", "Avignon", "84000", "84"),
    Commune("69123", "Lyon", "69001", "69"),
    Commune("42218", "Saint-Étienne", "42000", "42"),
    Commune("38185", "Grenoble", "38000", "38"),
    Commune("73065", "Chambéry", "73000", "73"),
    Commune("74010", "Annecy", "74000", "74"),
    Commune("26362", "Valence", "26000", "26"),
    # Corsica
    Commune("2A004", "Ajaccio", "20000", "2A"),
    Commune("2B033", "Bastia", "20200", "2B"),
    # Overseas departments
    Commune("97105", "Basse-Terre", "97100", "971"),
    Commune("97120", "Pointe-à-Pitre", "97110", "971"),
    Commune("97209", "Fort-de-France", "97200", "972"),
    Commune("97302", "Cayenne", "97300", "973"),
    Commune("97411", "Saint-Denis", "97400", "974"),
    Commune("97416", "Saint-Pierre", "97410", "974"),
    Commune("97611", "Mamoudzou", "97600", "976"),
)

# INSEE country codes for people born abroad (the NIR uses "99" + code).
FOREIGN_COUNTRIES: tuple[ForeignCountry, ...] = (
    ForeignCountry("109", "Allemagne", "DE"),
    ForeignCountry("127", "Italie", "IT"),
    ForeignCountry("131", "Belgique", "BE"),
    ForeignCountry("132", "Royaume-Uni", "GB"),
    ForeignCountry("134", "Espagne", "ES"),
    ForeignCountry("139", "Portugal", "PT"),
    ForeignCountry("350", "Maroc", "MA"),
    ForeignCountry("351", "Tunisie", "TN"),
    ForeignCountry("352", "Algérie", "DZ"),
)
