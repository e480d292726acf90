"""The host's HTTP API, route by route, with the real host's quirks (SPEC section 4)."""

import http.client
import json

import relay_standin as rs

from .helpers import call, get_json, post_rule


def rule(
    rule_id: str, stream: str = "spin30", destination: str = "ws://127.0.0.1:9/x", token: str = ""
) -> dict:
    return {"id": rule_id, "stream": stream, "destination": destination, "token": token}


def test_healthcheck_answers_ok(host: rs.Running) -> None:
    status, _, body = call("GET", host.url + "/healthcheck")
    assert (status, body) == (200, '"ok"')


def test_post_answers_rule_with_empty_file_and_trims_leading_slash(host: rs.Running) -> None:
    answer = post_rule(host.url, rule("spin30", stream="/spin30"))
    assert answer == {
        "id": "spin30",
        "stream": "spin30",
        "destination": "ws://127.0.0.1:9/x",
        "token": "",
        "file": "",
    }
    assert list(answer) == ["id", "stream", "destination", "token", "file"]
    assert get_json(host.url + "/api/destinations/spin30") == answer


def test_list_all_is_empty_object_then_maps_ids_to_rules(host: rs.Running) -> None:
    assert get_json(host.url + "/api/destinations/all") == {}
    post_rule(host.url, rule("b", "spin31"))
    post_rule(host.url, rule("a", "spin30"))
    everything = get_json(host.url + "/api/destinations/all")
    assert sorted(everything) == ["a", "b"]
    assert everything["b"]["stream"] == "spin31"
    assert everything["a"]["file"] == ""


def test_unknown_id_answers_200_with_all_empty_rule(host: rs.Running) -> None:
    status, _, body = call("GET", host.url + "/api/destinations/nosuch")
    assert status == 200
    assert json.loads(body) == {"id": "", "stream": "", "destination": "", "token": "", "file": ""}


def test_posting_same_id_replaces(host: rs.Running) -> None:
    post_rule(host.url, rule("x", "spin30"))
    post_rule(host.url, rule("x", "spin31"))
    assert get_json(host.url + "/api/destinations/all") == {
        "x": {"id": "x", "stream": "spin31", "destination": "ws://127.0.0.1:9/x", "token": "", "file": ""}
    }


def test_delete_answers_id_as_json_string_also_when_unknown(host: rs.Running) -> None:
    post_rule(host.url, rule("spin30"))
    post_rule(host.url, rule("spin31"))
    status, _, body = call("DELETE", host.url + "/api/destinations/spin30")
    assert (status, json.loads(body)) == (200, "spin30")
    assert sorted(get_json(host.url + "/api/destinations/all")) == ["spin31"]
    status, _, body = call("DELETE", host.url + "/api/destinations/never-there")
    assert (status, json.loads(body)) == (200, "never-there")
    assert sorted(get_json(host.url + "/api/destinations/all")) == ["spin31"]


def test_delete_all_only_removes_a_rule_called_all(host: rs.Running) -> None:
    post_rule(host.url, rule("spin30"))
    post_rule(host.url, rule("all"))
    status, _, body = call("DELETE", host.url + "/api/destinations/all")
    assert (status, json.loads(body)) == (200, "all")
    assert sorted(get_json(host.url + "/api/destinations/all")) == ["spin30"]
    call("DELETE", host.url + "/api/destinations/all")
    assert sorted(get_json(host.url + "/api/destinations/all")) == ["spin30"]


def test_delete_deleteall_removes_every_rule(host: rs.Running) -> None:
    for name in ("spin30", "spin31", "a/b"):
        post_rule(host.url, rule(name))
    status, _, body = call("DELETE", host.url + "/api/destinations/deleteAll")
    assert (status, json.loads(body)) == (200, "deleteAll")
    assert get_json(host.url + "/api/destinations/all") == {}


def test_ids_may_contain_slashes(host: rs.Running) -> None:
    post_rule(host.url, rule("lab/spin30", "spin30"))
    assert get_json(host.url + "/api/destinations/lab/spin30")["id"] == "lab/spin30"
    status, _, body = call("DELETE", host.url + "/api/destinations/lab/spin30")
    assert (status, json.loads(body)) == (200, "lab/spin30")
    assert get_json(host.url + "/api/destinations/all") == {}


def test_empty_object_is_stored_under_empty_id(host: rs.Running) -> None:
    answer = post_rule(host.url, {})
    assert answer == {"id": "", "stream": "", "destination": "", "token": "", "file": ""}
    assert get_json(host.url + "/api/destinations/all") == {"": answer}


def test_malformed_bodies_answer_500_plain_text(host: rs.Running) -> None:
    for body in (b"{not json", b"", b"[1, 2]", b'{"id": 5}', b"\xff\xfe"):
        status, content_type, text = call("POST", host.url + "/api/destinations", body)
        assert status == 500, body
        assert content_type.startswith("text/plain")
        assert text.strip()
    assert get_json(host.url + "/api/destinations/all") == {}


def test_keys_match_case_insensitively_like_go(host: rs.Running) -> None:
    answer = post_rule(
        host.url, {"ID": "k", "Stream": "spin30", "DESTINATION": "ws://127.0.0.1:9/x", "extra": 1}
    )
    assert answer["id"] == "k"
    assert answer["stream"] == "spin30"
    assert answer["destination"] == "ws://127.0.0.1:9/x"


def test_ids_outside_the_pattern_are_not_routed(host: rs.Running) -> None:
    assert call("GET", host.url + "/api/destinations/bad_id")[0] == 404
    assert call("DELETE", host.url + "/api/destinations/bad.id")[0] == 404
    assert call("GET", host.url + "/api/nothing")[0] == 404


def test_wrong_methods_answer_405(host: rs.Running) -> None:
    assert call("GET", host.url + "/api/destinations")[0] == 405
    assert call("PUT", host.url + "/api/destinations/x", b"{}")[0] == 405
    assert call("POST", host.url + "/healthcheck", b"")[0] == 405


def test_keep_alive_serves_several_requests_on_one_connection(host: rs.Running) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=5)
    try:
        for _ in range(3):
            connection.request("GET", "/healthcheck")
            answer = connection.getresponse()
            assert (answer.status, answer.read()) == (200, b'"ok"')
    finally:
        connection.close()


def test_parse_rule_trims_only_one_leading_slash() -> None:
    assert rs.parse_rule(b'{"stream": "//x"}')["stream"] == "/x"
    assert rs.parse_rule(b"null") == {"id": "", "stream": "", "destination": "", "token": "", "file": ""}
