// Opens the dashboard of one member of a clustered query in headless Chromium and prints, as
// one JSON line, the members table it shows once MEMBERS members each list partitions
// (tests/cluster.rs compares it with the members' entries in the checkpoint).
//
//   node members.mjs URL MEMBERS
import { chromium } from "playwright-core";

const [url, members] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
const out = { consoleErrors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("console", (m) => {
    if (m.type() === "error") out.consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => out.consoleErrors.push(String(e)));
  await page.goto(url);
  await page.waitForFunction(
    (n) => {
      const rows = [...document.querySelectorAll("#members tbody tr")];
      return rows.length >= n && rows.every((r) => r.children[2].textContent.length > 0);
    },
    Number(members),
    { timeout: 60000 },
  );
  out.group = await page.textContent("#members-group");
  out.self = await page.textContent("#members-self");
  out.rows = await page.$$eval("#members tbody tr", (rows) =>
    rows.map((r) => ({
      member: r.children[0].textContent,
      state: r.children[1].textContent,
      partitions: r.children[2].textContent.split(", "),
    })),
  );
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
