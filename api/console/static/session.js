// The API key lives in this tab's sessionStorage: entered once per browser session, gone when
// the tab closes, never in a URL (so never in history, logs or a Referer header).

const STORAGE_KEY = "wfe.console.apiKey";

export function getKey() {
  try {
    return sessionStorage.getItem(STORAGE_KEY) || "";
  } catch {
    return ""; // storage disabled: the user is asked again
  }
}

export function setKey(key) {
  sessionStorage.setItem(STORAGE_KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(STORAGE_KEY);
}
