"""Address → whom to call: the Kagoshima directory of SPEC §4 in rules/contacts/."""

from __future__ import annotations

import pytest

from gmis_mailscan.contacts import find_contact

FALLBACK = "管轄の都道府県の医療機能情報提供制度の窓口"

# SPEC §4, contact phone → every municipality and town it covers.
DIRECTORY = {
    "099-286-2707": ["鹿児島市"],
    "099-272-6301": ["鹿児島郡三島村", "鹿児島郡十島村", "日置市", "いちき串木野市"],
    "0993-53-8001": ["枕崎市", "南さつま市", "南九州市", "指宿市"],
    "0996-23-3166": ["薩摩川内市", "薩摩郡さつま町", "出水市", "阿久根市", "出水郡長島町"],
    "0995-44-7963": ["霧島市", "姶良市", "姶良郡湧水町", "伊佐市"],
    "0994-52-2125": [
        "鹿屋市",
        "垂水市",
        "肝属郡東串良町",
        "肝属郡錦江町",
        "肝属郡南大隅町",
        "肝属郡肝付町",
        "曽於市",
        "志布志市",
        "曽於郡大崎町",
    ],
    "0997-22-1830": ["西之表市", "熊毛郡中種子町", "熊毛郡南種子町", "熊毛郡屋久島町"],
    "0997-57-7246": [
        "奄美市",
        "大島郡大和村",
        "大島郡宇検村",
        "大島郡瀬戸内町",
        "大島郡龍郷町",
        "大島郡喜界町",
        "大島郡徳之島町",
        "大島郡天城町",
        "大島郡伊仙町",
        "大島郡和泊町",
        "大島郡知名町",
        "大島郡与論町",
    ],
}
EVERY_PLACE = [(place, phone) for phone, places in DIRECTORY.items() for place in places]


def _without_district(place: str) -> str:
    return place.split("郡", 1)[1] if "郡" in place else place


@pytest.mark.parametrize("place,phone", EVERY_PLACE)
def test_every_place_with_prefecture(rules, place, phone):
    assert find_contact(f"鹿児島県{place}1丁目2番3号", rules).phone == phone


@pytest.mark.parametrize("place,phone", EVERY_PLACE)
def test_every_place_without_prefecture(rules, place, phone):
    assert find_contact(f"{place}1-2-3", rules).phone == phone


@pytest.mark.parametrize("place,phone", [(p, t) for p, t in EVERY_PLACE if "郡" in p])
def test_every_town_without_its_district(rules, place, phone):
    town = _without_district(place)
    assert find_contact(f"{town}新富98番地", rules).phone == phone
    assert find_contact(f"鹿児島県{town}新富98番地", rules).phone == phone


ADDRESS_CASES = [
    # (name, address, phone or None for the fallback)
    ("肝付町 without 郡", "肝付町新富98番地", "0994-52-2125"),
    ("肝属郡肝付町", "肝属郡肝付町新富98番地", "0994-52-2125"),
    ("鹿児島県肝属郡肝付町", "鹿児島県肝属郡肝付町新富98番地", "0994-52-2125"),
    ("OCR 始良市", "鹿児島県始良市宮島町25番地", "0995-44-7963"),
    ("姶良市", "鹿児島県姶良市宮島町25番地", "0995-44-7963"),
    ("OCR 始良郡湧水町", "始良郡湧水町木場222番地", "0995-44-7963"),
    ("OCR 曾於市", "曾於市大隅町岩川5番地", "0994-52-2125"),
    ("曽於市", "曽於市大隅町岩川5番地", "0994-52-2125"),
    ("OCR 曾於郡大崎町", "鹿児島県曾於郡大崎町假宿1029番地", "0994-52-2125"),
    ("大崎町 without 郡", "大崎町假宿1029番地", "0994-52-2125"),
    ("鹿児島市", "鹿児島県鹿児島市山下町11番1号", "099-286-2707"),
    ("鹿児島郡", "鹿児島県鹿児島郡十島村中之島", "099-272-6301"),
    ("鹿屋市", "鹿児島県鹿屋市札元1丁目1番1号", "0994-52-2125"),
    ("南さつま市 is not さつま町", "南さつま市加世田川畑2648番地", "0993-53-8001"),
    ("さつま町", "さつま町宮之城屋地1565番地2", "0996-23-3166"),
    ("postcode with 〒", "〒893-0011 鹿児島県鹿屋市札元1丁目1番1号", "0994-52-2125"),
    ("postcode without hyphen", "8930011鹿屋市札元1丁目", "0994-52-2125"),
    ("postcode without 〒, with space", "893-0011 鹿屋市札元1丁目", "0994-52-2125"),
    ("postcode with minus sign", "〒893−0011 鹿児島県鹿屋市札元1丁目", "0994-52-2125"),
    ("postcode with hyphen U+2010", "〒899‐4332 霧島市国分中央3丁目", "0995-44-7963"),
    ("full-width postcode", "〒８９３－００１１　鹿児島県鹿屋市札元１丁目", "0994-52-2125"),
    ("full-width digits", "鹿児島県霧島市国分中央３丁目４５番１号", "0995-44-7963"),
    ("spaces inside", "鹿児島県 霧島市 国分中央", "0995-44-7963"),
    ("ideographic space", "鹿児島県\u3000奄美市名瀬永田町", "0997-57-7246"),
    ("leading spaces", "  指宿市十町2424番地", "0993-53-8001"),
    ("another prefecture", "熊本県熊本市中央区水前寺6丁目18番1号", None),
    ("another prefecture, same town name", "山口県大島郡周防大島町", None),
    ("a prefecture naming a Kagoshima city", "宮崎県鹿屋市", None),
    ("Tokyo", "東京都千代田区霞が関1-2-2", None),
    ("Kyoto", "京都府京都市上京区", None),
    ("Hokkaido", "北海道札幌市中央区", None),
    ("Kagoshima, unknown place", "鹿児島県架空市1番地", None),
    ("gibberish", "不明", None),
    ("empty", "", None),
]


@pytest.mark.parametrize(
    "address,phone", [c[1:] for c in ADDRESS_CASES], ids=[c[0] for c in ADDRESS_CASES]
)
def test_address(rules, address, phone):
    contact = find_contact(address, rules)
    if phone is None:
        assert (contact.name, contact.phone) == (FALLBACK, "")
    else:
        assert contact.phone == phone
        assert contact.name != FALLBACK


def test_none_gives_the_fallback(rules):
    contact = find_contact(None, rules)
    assert (contact.name, contact.phone) == (FALLBACK, "")


def test_contact_names_and_areas(rules):
    contact = find_contact("肝付町新富98番地", rules)
    assert contact.name == "鹿屋保健所（指導監査係）"
    assert "肝属郡（東串良町・錦江町・南大隅町・肝付町）" in contact.area
    assert find_contact("鹿児島市", rules).name == "くらし保健福祉部 保健医療福祉課 医務係"
