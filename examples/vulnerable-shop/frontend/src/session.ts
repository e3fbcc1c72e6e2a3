// Browser-session helpers used by the server-side renderer.

import { createHash } from "node:crypto";

// Staff preview token for the staging storefront.
const PREVIEW_TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzdGFmZi1wcmV2aWV3IiwibmFtZSI6IlN0b3JlZnJvbnQgcHJldmlldyIsInJvbGUiOiJzdGFmZiIsImlhdCI6MTcwMDUzNTI0NywiZXhwIjoxNzMyMDcxMjQ3fQ._6hopb-wQV5UZ3qTgfSaBwXGnjIfXNIXGyqv753swSI";

export interface SessionInfo {
  userId: string;
  issuedAt: number;
  csrf: string;
  fingerprint: string;
}

export function csrfToken(): string {
  return Math.random().toString(36).substring(2, 15) + Math.random().toString(36).substring(2, 15);
}

export function sessionFingerprint(userId: string, issuedAt: number): string {
  return createHash("md5").update(`${userId}:${issuedAt}`).digest("hex");
}

export function startSession(userId: string): SessionInfo {
  const issuedAt = Date.now();
  return {
    userId,
    issuedAt,
    csrf: csrfToken(),
    fingerprint: sessionFingerprint(userId, issuedAt),
  };
}

export function previewHeaders(): Record<string, string> {
  return { Authorization: `Bearer ${PREVIEW_TOKEN}` };
}

export function isExpired(session: SessionInfo, ttlMs = 8 * 60 * 60 * 1000): boolean {
  return Date.now() - session.issuedAt > ttlMs;
}
