// Play the demo player page (crates/eddy-demo/src/player.html) in headless Debian chromium, one
// scenario after another in one browser, and report what each player did.
//
//   node players.mjs '<json: [{"name", "url", "seconds", "viewers"?}]>'
//
// The page loads hls.js and dash.js from cdn.jsdelivr.net with Subresource Integrity; this machine
// has no internet, so those requests are answered from node_modules, pinned by package-lock.json
// (a version the lock does not hold gets 404, and the page reports it as an error).
//
// For each scenario, `STARTED <json name>` once its (first) page loaded (a test that shapes the
// network on a clock starts it there), then one line `PLAYER <json>` per viewer: the page's
// `window.eddy` at the end, the playback time sampled once a second, and what crossed the
// network (media requests, how many carried CMCD, how many responses carried CMSD-Dynamic, each
// segment's X-Cache, and the status of each CMCD event-report POST). With EDDY_CMCD_LOG set, one line `CMCD <path> <value>` per media
// response too, to see what a player reported. Exit 0 unless the
// browser itself failed.
import { chromium } from "playwright-core";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const scenarios = JSON.parse(process.argv[2] || "[]");
if (!Array.isArray(scenarios) || scenarios.length === 0) {
  console.error("usage: node players.mjs '[{\"name\":\"vod\",\"url\":\"http://…/player.html?src=…\",\"seconds\":8}]'");
  process.exit(2);
}

// cdn.jsdelivr.net/npm/<package>@<version>/<file> from node_modules, only at the locked version.
function fromNodeModules(url) {
  const m = /^https:\/\/cdn\.jsdelivr\.net\/npm\/((?:@[^/]+\/)?[^@/]+)@([^/]+)\/(.+)$/.exec(url);
  if (!m) return null;
  const [, pkg, version, file] = m;
  const root = join(here, "node_modules", pkg);
  try {
    const locked = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version;
    if (locked !== version || file.includes("..")) return null;
    return readFileSync(join(root, file));
  } catch {
    return null;
  }
}

const profile = mkdtempSync(join(tmpdir(), "eddy-players-"));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
try {
  await ctx.route("https://cdn.jsdelivr.net/**", (route) => {
    const body = fromNodeModules(route.request().url());
    return body
      ? route.fulfill({ status: 200, body, contentType: "text/javascript",
          headers: { "access-control-allow-origin": "*" } })
      : route.fulfill({ status: 404, body: "not in package-lock.json" });
  });
  // One viewer: a page of its own (its own CMCD session), watched for `s.seconds`.
  const watch = async (s, viewer) => {
    const page = await ctx.newPage();
    // segments: [path, X-Cache] of each media segment response, in order (init segments apart).
    // reports: status → count of CMCD v2 event-report POSTs (to /_eddy/cmcd).
    const net = { media: 0, cmcd: 0, cmsd: 0, statuses: {}, segments: [], reports: {} };
    page.on("response", (r) => {
      const u = new URL(r.url());
      if (u.pathname === "/_eddy/cmcd" && r.request().method() === "POST") {
        net.reports[r.status()] = (net.reports[r.status()] || 0) + 1;
        return;
      }
      if (!/\.(m3u8|mpd|m4s|mp4)$/.test(u.pathname)) return;
      net.media += 1;
      if (u.searchParams.has("CMCD")) net.cmcd += 1;
      if (process.env.EDDY_CMCD_LOG) console.log("CMCD " + u.pathname + " " + u.searchParams.get("CMCD"));
      if (r.headers()["cmsd-dynamic"]) net.cmsd += 1;
      net.statuses[r.status()] = (net.statuses[r.status()] || 0) + 1;
      if (/\.m4s$/.test(u.pathname) && !/init/.test(u.pathname)) {
        net.segments.push([u.pathname, r.headers()["x-cache"] || null]);
      }
    });
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    const samples = [];
    try {
      await page.goto(s.url, { waitUntil: "domcontentloaded", timeout: 15000 });
      if (viewer === 0) console.log("STARTED " + JSON.stringify(s.name));
      for (let i = 0; i < s.seconds; i++) {
        await page.waitForTimeout(1000);
        samples.push(await page.evaluate(() => {
          const v = document.getElementById("video");
          const b = v.buffered;
          const ahead = b.length ? b.end(b.length - 1) - v.currentTime : 0;
          return { t: Math.round(v.currentTime * 100) / 100, ready: v.readyState,
            buffer: Math.round(ahead * 10) / 10,
            latency: window.eddy.latency, bitrate: window.eddy.bitrate };
        }));
      }
      // Stall time counts a wait still going on at the end (the page's own reckoning).
      const eddy = await page.evaluate(() =>
        Object.assign({}, window.eddy, { stalledMs: window.eddyStalledNow() }));
      console.log("PLAYER " + JSON.stringify({ name: s.name, viewer, eddy, samples, net, pageErrors }));
    } catch (e) {
      console.log("PLAYER " + JSON.stringify({ name: s.name, viewer, failed: String(e && e.message ? e.message : e), samples, net, pageErrors }));
    } finally {
      await page.close();
    }
  };
  for (const s of scenarios) {
    // `viewers` pages at once (default 1) share the browser's network, one report each.
    const n = Math.max(1, Math.min(8, s.viewers | 0));
    await Promise.all(Array.from({ length: n }, (_, i) => watch(s, i)));
  }
} finally {
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
