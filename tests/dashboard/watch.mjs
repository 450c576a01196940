// Keeps the dashboard at URL open in headless Chromium, refreshing as a person watching it
// would, until the server goes away (`sluice-bench dashboard` measures what that costs a run).
//
//   node watch.mjs URL
import { chromium } from "playwright-core";

const [url] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
try {
  await page.goto(url);
  console.log("watching");
  // The page polls once a second by itself; wait until the server is gone.
  for (;;) {
    await page.waitForTimeout(500);
    const up = await page.evaluate(async () => {
      try {
        return (await fetch("/queries", { cache: "no-store" })).ok;
      } catch {
        return false;
      }
    });
    if (!up) break;
  }
} finally {
  await browser.close();
}
