"""End to end: the Open311 GeoReport v2 door of intake, with all six services as real
processes against the real PostgreSQL and Kafka.

1. An Open311 client library this project did not write - `georeport` from PyPI
   (GeoReport v2 reads: services, service definitions, requests) - in JSON and XML.
   It has no POST, so submissions go as raw form posts (what an Open311 client sends).
2. Raw HTTP for the rest: form validation naming the field, the spec's error format
   and status codes (400, 403, 404), replays, tokens, filters and limits, who sees
   what, and the FixMyStreet servicerequestupdates feed following a case through
   dispatch, accept and resolve.
"""
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts"))
import kesu_client as kc  # noqa: E402

GEOREPORT = "georeport==0.3.1"

failures = []
STACK = []
CHECKS = [0]


def check(cond, msg):
    CHECKS[0] += 1
    if not cond:
        failures.append(msg)
        kc.log("FAIL: " + msg)


def free_ports():
    """An HTTP port and an ops base whose next six ports are all free right now (other
    engineers' and CI's stacks share this machine)."""
    for _ in range(50):
        base = random.randrange(20000, 60000, 10)
        ports = [base] + [base + 100 + i for i in range(1, 7)]
        socks = []
        try:
            for p in ports:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base, base + 100
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free ports")


def import_georeport():
    """The library from PyPI, installed (without touching the system) into a cache dir."""
    try:
        import georeport  # noqa: F401
        return georeport.GeoReport
    except ImportError:
        pass
    cache = os.path.join(tempfile.gettempdir(), "kesu-e2e-pydeps")
    if not os.path.isdir(os.path.join(cache, "georeport")):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                        cache, GEOREPORT], check=True, stdin=subprocess.DEVNULL)
    sys.path.insert(0, cache)
    try:
        import requests  # noqa: F401
        import xmltodict  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", cache,
                        "requests", "xmltodict"], check=True, stdin=subprocess.DEVNULL)
    import georeport
    return georeport.GeoReport


class O311:
    """Raw HTTP against /open311/v2, answers decoded from JSON or XML."""

    def __init__(self, base):
        self.base = base + "/open311/v2"

    def call(self, method, path, form=None, query=None, ctype=None, raw=None):
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = raw if raw is not None else (urllib.parse.urlencode(form).encode()
                                            if form is not None else None)
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", ctype or "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read().decode(), dict(resp.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), dict(e.headers)

    def js(self, method, path, **kw):
        st, text, hdr = self.call(method, path, **kw)
        try:
            return st, json.loads(text), hdr
        except ValueError:
            return st, {"raw": text}, hdr

    def xml(self, method, path, **kw):
        st, text, hdr = self.call(method, path, **kw)
        return st, ET.fromstring(text.encode()), hdr


def error_of(st, body):
    """The spec's error: [{"code":N,"description":"..."}]."""
    if isinstance(body, list) and len(body) == 1 and set(body[0]) == {"code", "description"}:
        return body[0]["code"], body[0]["description"]
    return None, repr(body)


def main():
    http_port, ops_base = free_ports()
    stack = kc.Stack(http_port=http_port, ops_base=ops_base)
    STACK.append(stack)
    kc.log("logs in " + stack.logdir)
    stack.start()
    base = "http://127.0.0.1:%d" % http_port
    o = O311(base)
    run = uuid.uuid4().hex[:8]
    key = kc.token("integrator", label="e2e-open311-a")
    other = kc.token("integrator", label="e2e-open311-b")
    sup = kc.token("supervisor", label="e2e-open311-sup")
    with open(os.path.join(kc.ROOT, "deploy", "config", "catalogue.json")) as f:
        rules = [r["id"] for r in json.load(f)["rules"]]

    # --- 1. the service list and definitions, through georeport -------------------------
    GeoReport = import_georeport()
    gj = GeoReport(base + "/open311/v2")
    gx = GeoReport(base + "/open311/v2", output_format="xml")
    services = gj.get_service_list()
    check([s["service_code"] for s in services] == rules,
          "services.json lists every catalogue rule in order: %s" %
          [s.get("service_code") for s in services])
    for s in services:
        check(s["metadata"] is True and s["type"] == "realtime" and s["group"]
              and s["service_name"], "service fields %s" % s)
    xs = gx.get_service_list()
    check([s["service_code"] for s in xs] == rules, "services.xml lists the same codes")
    check(xs[0]["metadata"] == "true", "xml metadata %s" % xs[0].get("metadata"))
    d = gj.get_service_definition("water-supply")
    codes = [a["code"] for a in d["attributes"]]
    check(d["service_code"] == "water-supply" and "external_ref" in codes and "title" in codes,
          "definition %s" % d)
    dx = gx.get_service_definition("water-supply")
    check(dx["service_code"] == "water-supply" and
          [a["code"] for a in dx["attributes"]["attribute"]] == codes, "definition.xml %s" % dx)
    st, body, _ = o.js("GET", "/services/no-such-service.json")
    check(st == 404 and error_of(st, body)[0] == 404, "unknown service -> %s %s" % (st, body))
    st, root, hdr = o.xml("GET", "/services/no-such-service.xml")
    check(st == 404 and root.tag == "errors" and root.find("error/code").text == "404",
          "unknown service xml -> %s" % st)
    check(hdr.get("Content-Type", "").startswith("text/xml"), "xml content type %s" % hdr)

    # --- 2. submission: a normal case through intake's own path --------------------------
    phone = "139%08d" % (int(run[:6], 16) % 10**8)
    ref = "fms-%s-1" % run
    form = {"api_key": key, "service_code": "water-supply", "lat": "39.9042",
            "long": "116.4074", "address_string": "朝阳路1号",
            "description": "停水两天了，自来水一直没有来。联系电话%s" % phone,
            "first_name": "三", "last_name": "张", "phone": phone, "email": "zs@example.cn",
            "media_url": "https://img.example.cn/%s.jpg" % run,
            "attribute[external_ref]": ref, "attribute[district_code]": "110105"}
    st, body, _ = o.js("POST", "/requests.json", form=form)
    check(st == 201 and body[0].get("service_request_id"), "submit -> %s %s" % (st, body))
    case_no, token = body[0]["service_request_id"], body[0]["token"]
    # the same external_ref again is the same case (duplicate), in XML this time
    st, root, _ = o.xml("POST", "/requests.xml", form=form)
    check(st == 200 and root.tag == "service_requests" and
          root.find("request/service_request_id").text == case_no,
          "resubmit xml -> %s %s" % (st, ET.tostring(root)[:200]))
    st, js, _ = kc.Api(base).call("GET", "/v1/cases/%s" % case_no, token=sup)
    check(st == 200 and js.get("channel") == "open311" and js.get("external_ref") == ref,
          "the case is a normal case of channel open311: %s %s" % (st, js))
    check(phone not in json.dumps(js, ensure_ascii=False), "phone masked in the case view")
    rows = kc.psql("SELECT count(*) FROM cases WHERE channel = 'open311' AND external_ref = "
                   ":'p1'", ref)
    check(rows == [["1"]], "one case for the external_ref: %s" % rows)

    # validation: every refusal in the spec's format, naming the client's field
    bad = [
        ({"description": None}, 400, "description"),
        ({"lat": "91"}, 400, "lat"),
        ({"lat": "north"}, 400, "lat"),
        ({"long": None, "lat": None, "address_string": None}, 400, "lat"),
        ({"phone": "12"}, 400, "phone"),
        ({"email": "not-an-email"}, 400, "email"),
        ({"colour": "red"}, 400, "colour"),
        ({"attribute[confidential]": "maybe"}, 400, "attribute[confidential]"),
        ({"attribute[nonsense]": "1"}, 400, "attribute"),
        ({"service_code": "no-such-service"}, 400, "service_code"),
        ({"media_url": "ftp://x/y"}, 400, "media_url"),
        ({"attribute[external_ref]": None}, 400, "external_ref"),
        ({"api_key": None}, 403, "api_key"),
        ({"api_key": "kesu_not_a_key"}, 403, "api_key"),
    ]
    for change, want, field in bad:
        f = dict(form)
        f["attribute[external_ref]"] = "fms-%s-bad-%s" % (run, field)
        for k, v in change.items():
            if v is None:
                f.pop(k, None)
            else:
                f[k] = v
        st, body, _ = o.js("POST", "/requests.json", form=f)
        code, desc = error_of(st, body)
        check(st == want and code == want and field in desc,
              "%s -> %s %s (want %d naming %s)" % (change, st, body, want, field))
    st, body, _ = o.js("POST", "/requests.json", raw=b"api_key=" + key.encode() + b"&x=%ZZ")
    check(st == 400 and "x" in error_of(st, body)[1], "bad escape -> %s %s" % (st, body))
    st, body, _ = o.js("POST", "/requests.json", raw=json.dumps(form).encode(),
                       ctype="application/json")
    check(st == 415 and error_of(st, body)[0] == 415, "json body -> %s %s" % (st, body))
    rows = kc.psql("SELECT count(*) FROM cases WHERE external_ref LIKE :'p1'",
                   "fms-%s-bad-%%" % run)
    check(rows == [["0"]], "a refused request writes nothing: %s" % rows)

    # tokens
    st, body, _ = o.js("GET", "/tokens/%s.json" % token)
    check(st == 200 and body == [{"service_request_id": case_no, "token": token}],
          "token -> %s %s" % (st, body))
    st, body, _ = o.js("GET", "/tokens/%s.json" % uuid.uuid4())
    check(st == 404 and error_of(st, body)[0] == 404, "unknown token -> %s" % st)

    # --- 3. reads: who sees what -------------------------------------------------------
    mine = gj.get_service_request(case_no)  # georeport, no api_key: the public view
    check(mine["service_request_id"] == case_no and mine["status"] == "open" and
          mine["service_code"] == "water-supply", "public view %s" % mine)
    check(not any(k in mine for k in ("description", "address", "lat", "long", "media_url")),
          "the public view has no text, place or media: %s" % sorted(mine))
    mx = gx.get_service_request(case_no)
    check(mx["service_request_id"] == case_no and mx["status"] == "open", "xml view %s" % mx)
    st, body, _ = o.js("GET", "/requests/%s.json" % case_no, query={"api_key": key})
    full = body[0] if st == 200 else {}
    check(full.get("description", "").startswith("停水") and phone not in full["description"],
          "the submitter sees the masked description: %s" % full.get("description"))
    check(abs(full.get("lat", 0) - 39.9042) < 1e-9 and abs(full.get("long", 0) - 116.4074) < 1e-9
          and full.get("address") == "朝阳路1号" and full.get("media_url") == form["media_url"],
          "the submitter sees place and media: %s" % full)
    check(not any(k in full for k in ("email", "phone", "first_name", "last_name")),
          "no contact data ever: %s" % sorted(full))
    st, body, _ = o.js("GET", "/requests/%s.json" % case_no, query={"api_key": other})
    check(st == 200 and "description" not in body[0], "another integrator: public view only")
    st, body, _ = o.js("GET", "/requests/%s.json" % case_no, query={"api_key": "kesu_bad"})
    check(st == 403, "a bad api_key on a read -> %s" % st)
    st, body, _ = o.js("GET", "/requests/KS19990101-9999999.json")
    check(st == 404 and error_of(st, body)[0] == 404, "unknown request -> %s %s" % (st, body))

    # a second request, then the filters
    f2 = dict(form, service_code="city-management", description="路边垃圾堆了一周没人清理",
              **{"attribute[external_ref]": "fms-%s-2" % run})
    st, body, _ = o.js("POST", "/requests.json", form=f2)
    check(st == 201, "second submit -> %s %s" % (st, body))
    no2 = body[0]["service_request_id"] if st == 201 else None
    lst = gj.get_service_requests(service_request_id="%s,%s" % (case_no, no2))
    check(sorted(r["service_request_id"] for r in lst) == sorted([case_no, no2]),
          "service_request_id list %s" % lst)
    lst = gj.get_service_requests(service_code="city-management")
    check(no2 in [r["service_request_id"] for r in lst] and
          case_no not in [r["service_request_id"] for r in lst], "service_code filter")
    lst = gj.get_service_requests(status="closed")
    check(case_no not in [r["service_request_id"] for r in lst], "status=closed excludes it")
    lst = gj.get_service_requests(start_date="2000-01-01T00:00:00Z",
                                  end_date="2000-02-01T00:00:00Z")
    check(lst == [], "an old window is empty: %s" % lst)
    for q, field in [({"start_date": "yesterday"}, "start_date"),
                     ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"},
                      "90 days"),
                     ({"status": "pending"}, "status")]:
        st, body, _ = o.js("GET", "/requests.json", query=q)
        check(st == 400 and field in error_of(st, body)[1], "%s -> %s %s" % (q, st, body))
    st, body, _ = o.js("GET", "/nothing-here.json")
    check(st == 404 and error_of(st, body)[0] == 404, "unknown resource -> %s %s" % (st, body))

    # --- 4. every status change reaches the updates feed ---------------------------------
    api = kc.Api(base)

    def case_status():
        st, js, _ = api.call("GET", "/v1/cases/%s" % case_no, token=sup)
        return js.get("status") if st == 200 else None

    kc.wait_for(lambda: case_status() == "assigned", 60, "the open311 case assigned")
    st, js, _ = api.call("POST", "/v1/cases/%s/actions" % case_no, {"action": "accept"},
                         token=sup)
    check(st == 200, "accept -> %s %s" % (st, js))
    st, js, _ = api.call("POST", "/v1/cases/%s/actions" % case_no,
                         {"action": "resolve", "measures": "explanation",
                          "reply": "已恢复供水，感谢反映。"}, token=sup)
    check(st == 200, "resolve -> %s %s" % (st, js))

    def updates(q):
        st, body, _ = o.js("GET", "/servicerequestupdates.json", query=q)
        return [u for u in body if u["service_request_id"] == case_no] if st == 200 else []

    got = kc.wait_for(lambda: (lambda u: u if "FIXED" in [x["status"] for x in u] else None)(
        updates({"api_key": key})), 30, "the resolve in the updates feed")
    seen = [u["external_status_code"] for u in got]
    check(seen[:5] == ["received", "classified", "assigned", "accepted", "resolved"],
          "every status change in order: %s" % seen)
    check(len(set(u["update_id"] for u in got)) == len(got), "update ids unique")
    fixed = [u for u in got if u["status"] == "FIXED"][0]
    check(fixed["description"] == "已恢复供水，感谢反映。" and
          fixed["media_url"] == form["media_url"], "the submitter sees the reply: %s" % fixed)
    pub = updates({})
    check([u["external_status_code"] for u in pub][:5] == seen[:5] and
          all(u["media_url"] == "" for u in pub) and
          "已恢复" not in json.dumps(pub, ensure_ascii=False),
          "the public feed has the changes without text: %s" % pub)
    st, root, _ = o.xml("GET", "/servicerequestupdates.xml", query={"api_key": key})
    xs = [u for u in root.findall("request_update")
          if u.find("service_request_id").text == case_no]
    check(root.tag == "service_request_updates" and
          [u.find("external_status_code").text for u in xs][:5] == seen[:5], "updates.xml")
    lst = gj.get_service_requests(status="closed")
    check(case_no in [r["service_request_id"] for r in lst], "resolved counts as closed")

    codes = stack.stop()
    check(all(v == 0 for v in codes.values()), "clean exit codes: %s" % codes)
    stack.delete_topics()
    kc.finish(failures, "open311: %d checks, %d failed" % (CHECKS[0], len(failures)))


if __name__ == "__main__":
    kc.run_main(main, STACK)
