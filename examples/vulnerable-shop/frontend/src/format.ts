// Formatting helpers for prices, dates and user-supplied text.
// Pure functions plus two Web Crypto helpers (CSPRNG nonce, SHA-256 digest).

const currencyFormatters = new Map<string, Intl.NumberFormat>();

export function formatPrice(cents: number, currency = "EUR", locale = "de-DE"): string {
  const cacheKey = `${locale}:${currency}`;
  let formatter = currencyFormatters.get(cacheKey);
  if (!formatter) {
    formatter = new Intl.NumberFormat(locale, { style: "currency", currency });
    currencyFormatters.set(cacheKey, formatter);
  }
  return formatter.format(cents / 100);
}

export function formatDate(iso: string, locale = "de-DE"): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return "";
  }
  return date.toLocaleDateString(locale, { year: "numeric", month: "short", day: "numeric" });
}

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => HTML_ESCAPES[ch]);
}

export function maskCardNumber(pan: string): string {
  const digits = pan.replace(/\D/g, "");
  return digits.length < 4 ? "****" : `**** **** **** ${digits.slice(-4)}`;
}

export function truncate(text: string, max = 80): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export function randomNonce(bytes = 16): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function parseQuantity(raw: string): number {
  const n = Number.parseInt(raw, 10);
  return Number.isFinite(n) && n > 0 && n <= 99 ? n : 1;
}
