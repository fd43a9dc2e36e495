// The service's JSON API, by relative URL (the app may be mounted under a prefix). A reply
// that is not 2xx becomes an `ApiError` carrying the service's own message (`{"error": ...}`),
// so the page can show why, never swallow it.
"use strict";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function reply(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null; // not JSON (a proxy's error page, say): the status says it
  }
  if (!response.ok) {
    const message = body && typeof body.error === "string" ? body.error : response.statusText;
    throw new ApiError(response.status, `${response.status}: ${message || "request failed"}`);
  }
  return body;
}

/** GET `path` (relative) and its JSON body. */
export async function getJson(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: "application/json" } });
  } catch (error) {
    throw new ApiError(0, `the service could not be reached (${error.message})`);
  }
  return reply(response);
}

/** POST `body` as JSON to `path` (relative): state changes need a JSON body. */
export async function postJson(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body ?? {}),
    });
  } catch (error) {
    throw new ApiError(0, `the service could not be reached (${error.message})`);
  }
  return reply(response);
}

/** The path segment for an id (run ids and approval ids may hold any character). */
export const seg = (value) => encodeURIComponent(String(value));
