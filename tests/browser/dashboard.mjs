// The dashboard in a real headless Chromium (Debian's, driven by playwright-core), against a
// dashboard with a token and a fleet running a job. Run by tests/tests/e2e/dashboard.rs:
//   node dashboard.mjs BASE_URL JOB TOKEN HOSTILE_NAME SCREENSHOT_DIR
// Exits 0 when every check holds; otherwise prints the failed check and exits 1.
import { createRequire } from "node:module";

const require = createRequire(process.env.PLAYWRIGHT_CORE || import.meta.url);
const { chromium } = require("playwright-core");

const [base, job, token, hostile, shots] = process.argv.slice(2);
const check = (ok, what) => {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let alerts = 0;
const pageErrors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1300, height: 800 } });
  page.on("dialog", async (d) => {
    if (d.type() === "alert") alerts += 1;
    await d.accept();
  });
  page.on("pageerror", (e) => pageErrors.push(e.message));

  // 1. The jobs page lists the running job, and its progress rises while we watch.
  await page.goto(`${base}/`);
  const done = page.locator(`tr[data-job="${job}"] td.done`);
  await done.waitFor({ timeout: 20000 });
  const read = async () => Number((await done.textContent()).replace(/[^0-9]/g, ""));
  const first = await read();
  await page.waitForFunction(
    ([sel, before]) => Number(document.querySelector(sel)?.textContent.replace(/[^0-9]/g, "")) > before,
    [`tr[data-job="${job}"] td.done`, first], { timeout: 20000, polling: 250 });
  check((await read()) > first, `progress rises on the jobs page (from ${first} to ${await read()})`);
  await page.screenshot({ path: `${shots}/jobs.png`, fullPage: true });

  // 2. Stored text is shown as text: the hostile job name is on the page, literally, and
  //    neither became an element nor ran.
  const nameCell = page.locator(`tr[data-job="${job}"] td.name`);
  check((await nameCell.textContent()) === hostile, "the hostile job name renders as text");
  check((await page.locator("img").count()) === 0, "no element came from stored text");
  check(alerts === 0 && !(await page.evaluate(() => window.__volley_pwned === true)), "no stored script ran");

  // 3. Without the token, an action is refused and the job keeps running.
  await page.goto(`${base}/jobs/${job}`);
  await page.locator("#pause-button").waitFor({ state: "visible", timeout: 10000 });
  await page.click("#pause-button");
  await page.waitForFunction(() => /refused/.test(document.getElementById("action-result")?.textContent || ""));
  const refusal = await page.locator("#action-result").textContent();
  check(/needs the dashboard's token/.test(refusal), `pause without the token is refused: "${refusal}"`);
  const still = await page.evaluate(async (id) => (await (await fetch(`/api/jobs/${id}`)).json()), job);
  check(still.state === "running" && !still.paused, `the job keeps running (${still.state}, paused ${still.paused})`);
  await page.screenshot({ path: `${shots}/job-refused.png`, fullPage: true });

  // 4. Signed in with the token, the cancel button cancels it, and the page says so.
  await page.fill("#token", token);
  await Promise.all([page.waitForNavigation(), page.click("#signin button")]);
  check(/Signed in/.test(await page.locator("#mode").textContent()), "signed in with the token");
  await page.goto(`${base}/jobs/${job}`);
  await page.locator("#cancel-button").waitFor({ state: "visible", timeout: 10000 });
  await page.click("#cancel-button");
  await page.waitForFunction(() => /cancel: done/.test(document.getElementById("action-result")?.textContent || ""), null, { timeout: 10000 });
  await page.waitForFunction(() => (document.querySelector("#facts dd")?.textContent || "").startsWith("cancelled"), null, { timeout: 60000, polling: 500 });
  check(true, "the job page shows cancelled");
  await page.screenshot({ path: `${shots}/job-cancelled.png`, fullPage: true });

  // 5. The other pages draw.
  for (const [name, title] of [["workers", "Workers"], ["hosts", "Hosts"], ["dead", "Dead letters"]]) {
    await page.goto(`${base}/${name}`);
    await page.locator(`h1`).waitFor();
    check((await page.locator("h1").textContent()) === title, `the ${name} page draws`);
    await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  }
  check(pageErrors.length === 0, `no script error on any page (${pageErrors.join("; ")})`);
} catch (e) {
  console.error(e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
