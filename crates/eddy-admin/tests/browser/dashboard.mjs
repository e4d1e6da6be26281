// Load the live dashboard in headless Debian chromium while traffic flows, check that the figures
// move without a reload, and save a screenshot.
//
//   node dashboard.mjs <dashboard url> <screenshot.png> <expected edges>
//
// Exit 0 when every check holds; otherwise print what failed and exit 1.
import { chromium } from "playwright-core";

const [url, shot, expectedEdges] = process.argv.slice(2);
if (!url || !shot || !expectedEdges) {
  console.error("usage: node dashboard.mjs <dashboard url> <screenshot.png> <expected edges>");
  process.exit(2);
}

const fail = (msg) => {
  console.error("DASHBOARD CHECK FAILED: " + msg);
  process.exitCode = 1;
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (e) => fail("page error: " + e.message));
  await page.goto(url, { waitUntil: "domcontentloaded", timeout: 15000 });
  await page.waitForFunction(() => document.getElementById("conn").textContent === "live", null, { timeout: 15000 });

  // The edges come up and the request rate is above zero.
  await page.waitForFunction(
    (n) => document.getElementById("edges-up").textContent.trim() === `${n} / ${n}`
      && Number(document.getElementById("rps").textContent.replace(/,/g, "")) > 0,
    expectedEdges, { timeout: 20000 },
  );
  const read = () => page.evaluate(() => ({
    snapshots: Number(document.body.dataset.snapshots || 0),
    rps: document.getElementById("rps").textContent,
    hit: document.getElementById("hit-ratio").textContent,
    purge: document.getElementById("purge").textContent,
    requests: [...document.querySelectorAll("#nodes tr")].map((tr) => tr.children[7]?.textContent).join(","),
  }));
  const first = await read();
  // No reload: the same page gets new snapshots and the counters grow.
  await page.waitForFunction(
    (prev) => Number(document.body.dataset.snapshots || 0) >= prev.snapshots + 3
      && [...document.querySelectorAll("#nodes tr")].map((tr) => tr.children[7]?.textContent).join(",") !== prev.requests,
    first, { timeout: 15000 },
  );
  // The purge tile shows a latency once the purge's reports arrived.
  await page.waitForFunction(() => document.getElementById("purge").textContent.includes("ms"), null, { timeout: 15000 });
  const second = await read();
  if (!(second.hit.endsWith("%"))) fail(`hit ratio shows ${second.hit}`);
  await page.screenshot({ path: shot, fullPage: true });
  console.log("DASHBOARD: " + JSON.stringify({ first, second, screenshot: shot }));
} catch (e) {
  fail(String(e && e.message ? e.message : e));
} finally {
  await browser.close();
}
