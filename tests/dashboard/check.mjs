// Drives the dashboard of a running `sluice serve` in headless Chromium, as a person would,
// and prints what it saw as one JSON line (tests/dashboard.rs asserts on it).
//
//   node check.mjs URL TOKEN QUERY BATCHES SCREENSHOT
//
// 1. opens URL, waits until the page shows batch BATCHES or later for QUERY;
// 2. reads the numbers shown and every chart's point count, and the API's progress at the
//    same moment (from the page, with fetch);
// 3. clicks "Stop" with no token (must be refused), then types TOKEN and clicks again;
// 4. saves a screenshot; collects every console error.
import { chromium } from "playwright-core";

const [url, token, query, batches, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const out = { consoleErrors: [] };
// Cleared when the page is told to stop the query: a `sluice run --ui` ends with its last
// query, so what the browser logs after that — the server going away — is not the page's.
let collecting = true;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("console", (m) => {
    if (collecting && m.type() === "error") out.consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => {
    if (collecting) out.consoleErrors.push(String(e));
  });
  await page.goto(url);
  await page.waitForFunction(
    (n) => Number(document.getElementById("last-batch").textContent) >= n,
    Number(batches),
    { timeout: 60000 },
  );
  // Freeze what the page shows and what the API says at one moment: the page redraws each
  // second, so read both inside one evaluation right after a redraw.
  out.shown = await page.evaluate(async (q) => {
    const text = (id) => document.getElementById(id).textContent;
    const points = {};
    for (const el of document.querySelectorAll(".chart")) points[el.id] = Number(el.dataset.points);
    const api = await (await fetch(`/queries/${encodeURIComponent(q)}/progress`)).json();
    return {
      lastBatch: text("last-batch"),
      lastInputRows: text("last-input-rows"),
      points,
      planNodes: [...document.querySelectorAll("#plan .node")].map((n) => n.firstChild.textContent),
      sql: document.getElementById("sql").hidden ? null : document.getElementById("sql").textContent,
      queryRows: document.querySelectorAll("#queries tbody tr").length,
      api: api.recentProgress.map((p) => [p.batchId, p.numInputRows]),
    };
  }, query);
  await page.screenshot({ path: screenshot, fullPage: true });

  // Stop without a token: refused, the query goes on.
  await page.fill("#token", "");
  await page.click("#stop");
  await page.waitForFunction(() => document.getElementById("action-result").textContent.startsWith("refused"));
  out.withoutToken = await page.textContent("#action-result");
  // A swap (when asked for): the step runs the new module from the next batch, and the page's
  // module table shows where it changed.
  if (process.env.SWAP_STEP) {
    await page.fill("#token", token);
    await page.selectOption("#swap-step", process.env.SWAP_STEP);
    await page.fill("#swap-module", process.env.SWAP_MODULE);
    await page.click("#swap");
    await page.waitForFunction(() => document.getElementById("action-result").textContent.startsWith("swapped"));
    out.swap = await page.textContent("#action-result");
    await page.waitForFunction(() => [...document.querySelectorAll("#modules td.swaps")].some((td) => td.textContent.includes("→")), null, { timeout: 60000 });
    out.swapHistory = await page.evaluate(() => [...document.querySelectorAll("#modules td.swaps")].map((td) => td.textContent));
  }
  // With it: stopped.
  await page.fill("#token", token);
  collecting = false;
  await page.click("#stop");
  await page.waitForFunction(() => document.getElementById("action-result").textContent.startsWith("stopped"), null, {
    timeout: 60000,
  });
  out.withToken = await page.textContent("#action-result");
  // The refused request's 401 is logged by the browser itself; nothing else may be.
  out.consoleErrors = out.consoleErrors.filter((e) => !(e.includes("401") && e.includes("Failed to load resource")));
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
