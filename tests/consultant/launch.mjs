// Shared by the browser drivers: settings from the environment, JSON-line reports on stdout, and
// Chromium launched the one way the tests need (fake media, the test server's key pinned).
import { chromium } from "playwright-core";

export const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is required`);
  return v;
};

export const say = (event, data = {}) => console.log(JSON.stringify({ event, ...data }));

// `y4m`: the fake camera's clip, when the page takes a call.
export async function launch({ y4m } = {}) {
  return chromium.launch({
    executablePath: process.env.SC_CHROMIUM || "/usr/bin/chromium",
    args: [
      // SC_HEADLESS=0 draws on the X display instead (the benchmark's like-for-like peer).
      ...(process.env.SC_HEADLESS === "0" ? ["--window-size=1280,800", "--disable-backgrounding-occluded-windows"] : ["--headless=new"]),
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-dev-shm-usage",
      ...(y4m ? ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required",
        `--use-file-for-fake-video-capture=${y4m}`] : []),
      // Trust exactly the test server's key, as a pin would; nothing else is relaxed.
      `--ignore-certificate-errors-spki-list=${env("SC_SPKI")}`,
    ],
  });
}
