// Drives the supervisor console in Debian's headless Chromium with
// playwright-core (no bundled browser): opens /console, signs in with a
// token, waits for the summary to be drawn, saves a screenshot and prints
// one JSON line with what the page shows. tests/e2e/test_console.py runs it
// and makes the assertions.
//
//   node console.js BASE_URL TOKEN SCREENSHOT.png PROFILE_DIR
"use strict";
const { chromium } = require("playwright-core");

async function main() {
  const [base, token, shot, profile] = process.argv.slice(2);
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.KESU_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1400, height: 1800 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const out = { console_errors: [], requests_elsewhere: [] };
  try {
    const page = ctx.pages()[0] || (await ctx.newPage());
    const origin = new URL(base).origin;
    page.on("console", (m) => { if (m.type() === "error") out.console_errors.push(m.text()); });
    page.on("pageerror", (e) => out.console_errors.push(String(e)));
    page.on("request", (r) => {
      if (!r.url().startsWith(origin)) out.requests_elsewhere.push(r.url());
    });
    await page.goto(base + "/console");
    out.login_visible = await page.isVisible("#login-form");
    out.board_hidden_before = await page.isHidden("#board");

    // a wrong token first: the page must say so and stay on the login form
    await page.fill("#token", "not-a-real-token");
    await page.click("#login-form button[type=submit]");
    // (a CSS wait: the page's CSP forbids the eval that waitForFunction needs)
    await page.waitForSelector("#login-error:not(:empty)", { timeout: 15000 });
    out.bad_token_message = await page.textContent("#login-error");

    // the refused sign-in's 401 is expected; any other error after it is not
    out.console_errors = out.console_errors.filter((m) => !/status of 401/.test(m));
    await page.fill("#token", token);
    await page.click("#login-form button[type=submit]");
    await page.waitForSelector("body[data-loaded]", { timeout: 15000 });
    out.login_hidden_after = await page.isHidden("#login");
    out.board_visible_after = await page.isVisible("#board");
    out.token_in_session = await page.evaluate(() => !!sessionStorage.getItem("kesu.console.token"));
    out.token_in_local = await page.evaluate(() => localStorage.length);

    const text = (sel) => page.textContent(sel).then((s) => (s || "").trim());
    out.scope = await text("#scope");
    out.open_total = Number(await text("#open-total"));
    out.sla_breached = Number(await text("#sla-breached"));
    out.sla_warning = Number(await text("#sla-warning"));
    out.emergency_count = Number(await text("#emergency-count"));
    out.emergencies_more_hidden = await page.$eval("#emergencies-more", (e) => e.hidden);
    out.status_counts = await page.$$eval("#status-table tr", (rows) =>
      Object.fromEntries(rows.map((r) => [r.getAttribute("data-status"), Number(r.lastChild.textContent)])));
    out.status_bars = await page.$$eval("#status-chart rect", (b) =>
      Object.fromEntries(b.map((r) => [r.getAttribute("data-label"), Number(r.getAttribute("data-value"))])));
    out.emergencies = await page.$$eval("#emergencies tbody tr", (rows) =>
      rows.map((r) => ({ case_no: r.getAttribute("data-case-no"),
        cells: [...r.children].map((c) => c.textContent) })));
    out.sla_rows = await page.$$eval("#sla tbody tr", (rows) =>
      rows.map((r) => ({ case_no: r.getAttribute("data-case-no"),
        cells: [...r.children].map((c) => c.textContent) })));
    out.departments = await page.$$eval("#departments tbody tr", (rows) =>
      rows.map((r) => ({ code: r.getAttribute("data-dept"),
        cells: [...r.children].map((c) => c.textContent) })));
    out.dept_bars = await page.$$eval("#dept-chart rect", (b) => b.map((r) => r.getAttribute("data-dept")));
    out.satisfaction_points = await page.$$eval("#satisfaction-chart circle", (c) =>
      c.map((p) => ({ day: p.getAttribute("data-day"), rate: Number(p.getAttribute("data-rate")) })));
    out.satisfaction_note = await text("#satisfaction-note");
    out.hotspots = await page.$$eval("#hotspots tbody tr", (rows) => rows.length);
    out.hotspots_empty = await text("#hotspots-empty");
    // a case title is shown as text: markup in it must never become elements
    out.injected = await page.$$eval("#board img, #board script", (e) => e.length);
    await page.screenshot({ path: shot, fullPage: true });

    await page.click("#logout");
    out.after_logout_login_visible = await page.isVisible("#login-form");
    out.token_after_logout = await page.evaluate(() => sessionStorage.getItem("kesu.console.token"));
  } finally {
    await ctx.close();
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
});
