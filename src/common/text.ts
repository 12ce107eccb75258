/**
 * A client's string as an error message quotes it: JSON-quoted (so control characters show as
 * escapes), at most `max` characters of it, and its length when it is longer, so a huge value
 * cannot bloat a status, a 400 body or a log line.
 */
export function quoted(value: string, max = 64): string {
  return value.length <= max
    ? JSON.stringify(value)
    : `${JSON.stringify(value.slice(0, max))}… (${value.length} characters)`;
}
