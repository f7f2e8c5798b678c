#!/usr/bin/env python3
"""End to end: the Prometheus rules and the Grafana dashboard in deploy/ against a real
Prometheus that scrapes the real agent measuring a real VM.

promtool checks and unit-tests the rules. Then every PromQL expression of the rule file and of
the dashboard (panel targets and template variable queries, with the template variables set to
this VM and agent) runs through Prometheus's HTTP API and must answer without error and with
data. An alert's expression has data only while it fires, so it runs with each comparison
against a number turned into a `bool` comparison: that keeps every selector, label and join of
the alert and answers 0 or 1 per series instead of nothing.

Usage: test_rules_dashboard.py --agent PATH/kvmprof-agent. Needs root (exit 77 = skipped otherwise).
"""
import atexit
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.parse
import urllib.request

import harness as h

RULES = os.path.join(h.DEPLOY, "prometheus", "kvmprof-rules.yml")
RULE_TESTS = os.path.join(h.DEPLOY, "prometheus", "kvmprof-rules.test.yml")
DASHBOARD = os.path.join(h.DEPLOY, "grafana", "kvmprof-dashboard.json")
VM_NAME = "kvmprof-it-rules"
JOB = "kvmprof"  # the job name the alerts expect (deploy/prometheus-scrape.yml)
SAMPLING = "default:\n  sampling:\n    event: cpu-clock\n    frequency: 99\n"  # as config/agent.yaml

# The rules and panels whose expressions cannot have data while this test runs, each with the
# reason: they must answer without error and with nothing.
EMPTY_BY_DESIGN = {
    "alert KvmprofAgentMissing":
        "absent(up{job=\"kvmprof\"}) answers only when Prometheus has no kvmprof target, and this "
        "test scrapes one; its firing is tested by kvmprof-rules.test.yml",
    'panel "Counter multiplexing (running / enabled)" A':
        "only hardware (PMU) events export enabled and running seconds, and this test's agent counts "
        "the default software events and tracepoints; the expression is checked to run",
}

# What Grafana puts in place of its own variables; $instance and $domain are set per test run.
GRAFANA_VARIABLES = {"__rate_interval": "1m"}

AGENT = None


class PrometheusWithRules:
    """A real Prometheus scraping one agent every second, with the rule file evaluated every
    second (harness.Prometheus has no rule files)."""

    def __init__(self, workdir, target_port, rule_file):
        self.port = h.free_port()
        config = os.path.join(workdir, "prometheus-rules.yml")
        with open(config, "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    f"rule_files: ['{rule_file}']\n"
                    "scrape_configs:\n"
                    f"  - job_name: {JOB}\n"
                    f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n")
        self.log = open(os.path.join(workdir, "prometheus.log"), "w+")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={workdir}/tsdb-rules",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=self.log)
        atexit.register(self.stop)

    def api(self, path, **params):
        """The API's answer as JSON, also for an error (HTTP 400/422 with status "error")."""
        if self.proc.poll() is not None:
            self.log.seek(0)
            raise AssertionError(f"prometheus exited {self.proc.returncode}: {self.log.read()[-5000:]}")
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            return json.load(e)

    def query(self, promql):
        """Returns (error or None, result list)."""
        answer = self.api("query", query=promql)
        if answer["status"] != "success":
            return f'{answer.get("errorType")}: {answer.get("error")}', []
        return None, answer["data"]["result"]

    def has(self, promql):
        try:
            return self.query(promql)[1]
        except OSError:  # not listening yet
            return []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.log.close()


def rules_in_file():
    with open(RULES) as f:
        return re.findall(r"^\s*- (?:record|alert): (\S+)$", f.read(), re.M)


def as_bool_comparisons(expr):
    """`x > 0.5` -> `x > bool 0.5`: the comparison answers 0 or 1 for every series it sees
    instead of dropping the series where it does not hold."""
    return re.sub(r"(==|!=|>=|<=|>|<)\s*(?=-?[0-9.])", r"\1 bool ", expr)


def dashboard_expressions(dashboard):
    """(where, expr, variable) for every panel target, also in collapsed rows, and every query
    variable: label_values(SELECTOR, LABEL) runs as SELECTOR, and `variable` = (name, LABEL)."""
    found = []

    def walk(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                found.append((f'panel "{panel["title"]}" {target["refId"]}', target["expr"], None))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", var["query"])
            found.append((f'variable ${var["name"]}', m.group(1), (var["name"], m.group(2))))
    return found


class RulesAndDashboardAgainstRealPrometheus(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvmprof-rules-")
        os.chmod(cls.tmp.name, 0o755)
        h.libvirt_up()
        cls.vm = h.Vm(cls.tmp.name, VM_NAME, vcpus=2)
        cls.agent = h.Agent(AGENT, cls.tmp.name, interval="1s", extra_config=SAMPLING)
        cls.prom = PrometheusWithRules(cls.tmp.name, cls.agent.port, RULES)
        cls.variables = dict(GRAFANA_VARIABLES, instance=f"127.0.0.1:{cls.agent.port}", domain=VM_NAME)
        cls.rules = h.wait_for("Prometheus to load the rules", cls.loaded_rules, timeout=30, step=0.5)
        # Every recording rule has written data for the VM: the rates need two scrapes of
        # every series, the exits a libvirt answer. Then the VM's samples are in too.
        for rule in cls.rules:
            if rule["type"] == "recording":
                h.wait_for(f'{rule["name"]} in Prometheus',
                           lambda: cls.prom.has(f'{rule["name"]}{{domain="{VM_NAME}"}}'), timeout=90, step=0.5)
        h.wait_for("the VM's samples in Prometheus",
                   lambda: cls.prom.has(f'rate(kvmprof_vcpu_samples_total{{domain="{VM_NAME}"}}[1m])'),
                   timeout=60, step=0.5)

    @classmethod
    def loaded_rules(cls):
        """Every rule Prometheus loaded, as its API gives them (name, query, type, health...)."""
        try:
            groups = cls.prom.api("rules")["data"]["groups"]
        except OSError:  # not listening yet
            return None
        return [rule for group in groups for rule in group["rules"]]

    @classmethod
    def tearDownClass(cls):
        cls.prom.stop()
        code = cls.agent.stop()
        cls.vm.destroy()
        cls.tmp.cleanup()
        assert code == 0, f"agent exited {code} on SIGTERM"

    def check_answers(self, where, expr):
        """Runs expr: no error, and data unless EMPTY_BY_DESIGN says why not."""
        error, result = self.prom.query(expr)
        self.assertIsNone(error, f"{where}: {expr}")
        if where in EMPTY_BY_DESIGN:
            self.assertEqual(result, [], f"{where} is allowed to be empty, but it answered: {expr}")
        else:
            self.assertTrue(result, f"{where}: no data for {expr}")
        return result

    def test_1_promtool_checks_the_rules(self):
        for cmd in (["promtool", "check", "rules", RULES], ["promtool", "test", "rules", RULE_TESTS]):
            result = subprocess.run(cmd, capture_output=True, text=True)
            self.assertEqual(result.returncode, 0, f"{' '.join(cmd)}:\n{result.stdout}{result.stderr}")

    def test_2_prometheus_evaluates_every_rule_without_error(self):
        self.assertEqual(sorted(rule["name"] for rule in self.loaded_rules()), sorted(rules_in_file()))
        for rule in self.loaded_rules():
            self.assertEqual(rule["health"], "ok", f'{rule["name"]}: {rule.get("lastError")}')
        # The agent and libvirt are up and the config loaded: those alerts are quiet.
        states = {rule["name"]: rule["state"] for rule in self.loaded_rules() if rule["type"] == "alerting"}
        print("\n  alert states: " + ", ".join(f"{name} {state}" for name, state in states.items()))
        for name in ("KvmprofAgentDown", "KvmprofAgentMissing", "KvmprofLibvirtDown", "KvmprofConfigReloadFailed"):
            self.assertEqual(states[name], "inactive", name)

    def test_3_every_rule_expression_answers_with_data(self):
        for rule in self.rules:
            with self.subTest(rule=rule["name"]):
                if rule["type"] == "recording":
                    where = f'record {rule["name"]}'
                    self.check_answers(where, rule["query"])
                    # What the rule wrote, for this VM: the dashboard reads it.
                    self.check_answers(where, f'{rule["name"]}{{domain="{VM_NAME}"}}')
                else:
                    self.check_answers(f'alert {rule["name"]}', as_bool_comparisons(rule["query"]))

    def test_4_every_dashboard_expression_answers_with_data(self):
        with open(DASHBOARD) as f:
            expressions = dashboard_expressions(json.load(f))
        self.assertGreater(len(expressions), 20)
        for where, expr, variable in expressions:
            with self.subTest(where):
                for name, value in self.variables.items():
                    expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
                self.assertNotIn("$", expr, f"{where}: a variable this test does not set")
                result = self.check_answers(where, expr)
                if variable:  # the variable offers this test's agent or VM
                    name, label = variable
                    self.assertIn(self.variables[name], {series["metric"].get(label) for series in result}, where)
        print(f"\n  {len(expressions)} dashboard expressions answered with data")

    def test_5_dashboard_is_a_grafana_dashboard(self):
        """What Grafana's import needs and the dashboard promises: schema 39, the datasource,
        instance and domain variables, panels of known types with unique ids, every query on
        the datasource variable, and host, VM and vCPU rows."""
        with open(DASHBOARD) as f:
            dashboard = json.load(f)
        self.assertEqual(dashboard["schemaVersion"], 39)
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        self.assertEqual(set(variables), {"datasource", "instance", "domain"})
        self.assertEqual((variables["datasource"]["type"], variables["datasource"]["query"]), ("datasource", "prometheus"))
        ids = [panel["id"] for panel in dashboard["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        rows = [panel["title"].split(":")[0].split()[0] for panel in dashboard["panels"] if panel["type"] == "row"]
        self.assertEqual(rows, ["Host", "VM", "vCPUs"])
        for panel in dashboard["panels"]:
            self.assertIn(panel["type"], {"row", "timeseries", "stat", "table"}, panel["title"])
            self.assertTrue({"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"])
            if panel["type"] != "row":
                self.assertEqual(panel["datasource"]["uid"], "${datasource}", panel["title"])
                for target in panel["targets"]:
                    self.assertEqual(target["datasource"]["uid"], "${datasource}", panel["title"])


def set_agent(path):
    global AGENT
    AGENT = path


if __name__ == "__main__":
    sys.exit(h.main(set_agent))
