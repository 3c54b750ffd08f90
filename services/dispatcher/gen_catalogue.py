#!/usr/bin/env python3
"""Build deploy/config/catalogue.json: the default dispatch catalogue of a city.

Departments, handlers and the hand-written keyword rules (the ones a hotline
learns from its own cases: water supply, wage arrears, ...) are kept from the
current file; then one keyword rule per second-level class of the government
category tree (../shared/data/teddy2020c-taxonomy.jsonl, 城乡建设/住房保障与房地产
...) is generated for the domains Kesu routes, its keywords the third-level
classes (and their core term without 管理/问题/纠纷/...), its department from the
table below. A keyword is used once per domain (the first rule that names it
keeps it), so `kesuctl catalogue load` finds no overlapping rules.

    python3 services/dispatcher/gen_catalogue.py [TAXONOMY] > deploy/config/catalogue.json
"""
import collections
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TAXONOMY = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(ROOT), "shared", "data", "teddy2020c-taxonomy.jsonl")

DOMAIN = {"城乡建设": "urban_construction", "环境保护": "environment", "交通运输": "transport",
          "教育文体": "education_culture", "劳动和社会保障": "labour_social_security",
          "商贸旅游": "commerce_tourism", "卫生计生": "health_family_planning"}

# level2 -> (lead department, co-handling departments)
DEPT = {
    "安全生产": ("emergency_management", []), "城市建设和市政管理": ("urban_management", []),
    "城乡规划": ("planning", []), "村镇建设": ("housing", []), "工程质量": ("housing", []),
    "国有土地上房屋征收与补偿": ("housing", ["planning"]),
    "集体土地上房屋拆迁与补偿": ("planning", ["housing"]), "建筑市场": ("housing", []),
    "住房保障与房地产": ("housing", []),
    "环保管理": ("ecology", []), "环境污染": ("ecology", []), "建设项目审批": ("ecology", ["planning"]),
    "出租车管理": ("transport", []), "建设管理": ("transport", []), "交通运输": ("transport", []),
    "客货运输": ("transport", []), "邮政管理": ("postal", []),
    "旅游管理": ("culture_tourism", []), "商业贸易": ("commerce", []),
    "市场监管": ("market_regulation", []), "质监检验检疫": ("market_regulation", []),
    "公共卫生": ("health", []), "人口计生": ("health", []),
    "食品药品监管": ("market_regulation", ["health"]), "医患纠纷": ("health", []),
    "医政监管": ("health", []),
    "教师队伍和待遇": ("education", []), "教育行政管理": ("education", []), "教育收费": ("education", []),
    "教育体制": ("education", []), "考试招生": ("education", []), "失学辍学": ("education", []),
    "体育": ("culture_tourism", []), "文化": ("culture_tourism", []), "文物管理": ("culture_tourism", []),
    "城镇居民社会保险": ("hrss", []), "城镇职工社会保险": ("hrss", []), "工资福利": ("hrss", []),
    "就业培训": ("hrss", []), "劳动保护": ("hrss", []), "劳动关系": ("hrss", []),
    "社保基金管理": ("hrss", []), "退休政策及待遇": ("hrss", []),
}
NEW_DEPTS = [
    {"code": "supervision_office", "name": "12345热线督办科", "parent": "general_office",
     "head": "督办科科长", "on_duty": "督办科值班员", "supervision": True},
    {"code": "emergency_management", "name": "应急管理局", "head": "应急管理局分管副局长",
     "on_duty": "应急管理局值班室"},
    {"code": "planning", "name": "自然资源和规划局", "head": "自然资源和规划局分管副局长",
     "on_duty": "自然资源和规划局办公室"},
    {"code": "postal", "name": "邮政管理局", "head": "邮政管理局分管副局长", "on_duty": "邮政业用户申诉中心"},
]
NEW_HANDLERS = [
    {"id": "so-01", "department": "supervision_office", "name": "督办科改派组", "skills": ["*"], "capacity": 100},
    {"id": "so-02", "department": "supervision_office", "name": "督办科督查组", "skills": ["*"], "capacity": 100},
    {"id": "emg-01", "department": "emergency_management", "name": "应急管理局安全生产科",
     "skills": ["urban_construction"], "capacity": 60},
    {"id": "emg-02", "department": "emergency_management", "name": "应急管理局执法支队",
     "skills": ["urban_construction"], "capacity": 60},
    {"id": "pl-01", "department": "planning", "name": "规划局规划管理科", "skills": ["urban_construction", "environment"], "capacity": 60},
    {"id": "pl-02", "department": "planning", "name": "规划局征地拆迁科", "skills": ["urban_construction"], "capacity": 60},
    {"id": "po-01", "department": "postal", "name": "邮政管理局市场监管科", "skills": ["transport"], "capacity": 50},
    {"id": "po-02", "department": "postal", "name": "邮政业用户申诉中心", "skills": ["transport"], "capacity": 50},
]
# words citizens use that the tree's class names lack
EXTRA = {"邮政管理": ["快递", "包裹", "邮件"], "出租车管理": ["出租车", "网约车", "的士"],
         "医患纠纷": ["医闹", "医疗纠纷"], "考试招生": ["高考", "中考"], "体育": ["健身"]}
SUFFIXES = ("管理", "问题", "纠纷", "政策", "服务", "监管", "标准化", "待遇", "办理", "登记")


def core_terms(term):
    out = [term]
    for s in SUFFIXES:
        if term.endswith(s) and len(term) - len(s) >= 2:
            out.append(term[: -len(s)])
    for part in term.replace("和", "、").replace("及", "、").split("、"):
        if len(part) >= 2 and part not in out:
            out.append(part)
    return out


def main():
    with open(os.path.join(ROOT, "deploy", "config", "catalogue.json")) as f:
        cat = json.load(f)
    codes = {d["code"] for d in cat["departments"]}
    cat["departments"] += [d for d in NEW_DEPTS if d["code"] not in codes]
    ids = {h["id"] for h in cat["handlers"]}
    cat["handlers"] += [h for h in NEW_HANDLERS if h["id"] not in ids]
    hand = [r for r in cat["rules"] if not r["id"].startswith("tx-")]
    keyword_rules = [r for r in hand if r.get("keywords")]
    plain_rules = [r for r in hand if not r.get("keywords")]
    used = collections.defaultdict(set)
    for r in keyword_rules:
        used[r.get("domain", "*")].update(k.lower() for k in r["keywords"])
    tree = collections.OrderedDict()
    with open(TAXONOMY) as f:
        for line in f:
            d = json.loads(line)
            if d["level1"] in DOMAIN and d["level2"] != "其他":
                tree.setdefault((d["level1"], d["level2"]), []).append(d["level3"])
    generated = []
    n = collections.Counter()
    for (l1, l2), l3s in tree.items():
        dom = DOMAIN[l1]
        lead, co = DEPT[l2]
        kws = []
        for term in [l2] + l3s + EXTRA.get(l2, []):
            if term == "其他":
                continue
            for k in core_terms(term):
                if k.lower() not in used[dom]:
                    used[dom].add(k.lower())
                    kws.append(k)
        if not kws:
            continue
        n[dom] += 1
        r = {"id": "tx-%s-%02d" % (dom.replace("_", "-"), n[dom]), "domain": dom,
             "keywords": kws, "department": lead, "_class": "%s/%s" % (l1, l2)}
        if co:
            r["co_departments"] = co
        generated.append(r)
    cat["rules"] = keyword_rules + generated + plain_rules
    cat["_comment"] = (
        "Dispatch catalogue of a city 12345 hotline (services/dispatcher/dispatch_catalogue.h, "
        "docs/dispatch.md). Loaded into PostgreSQL with `kesuctl catalogue load`; the dispatcher "
        "picks a new version up without a restart. Precedence: the most specific matching rule "
        "wins - keywords beat a district, which beats a category, which beats a plain domain "
        "rule - and among equally specific rules the earlier one. The hand-written keyword rules "
        "come first; the tx-* rules are generated from the government category tree "
        "(teddy2020c-taxonomy.jsonl, second level, keywords from the third level) by "
        "services/dispatcher/gen_catalogue.py. The default rule (everything *) is required. "
        "Emergencies go to the emergency desk; a case returned max_returns times goes to the "
        "department marked supervision (督办科). head and on_duty name roles, never people.")
    out = json.dumps(cat, ensure_ascii=False, indent=1)
    sys.stdout.write(out + "\n")


main()
