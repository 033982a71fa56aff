/**
 * An alert as the non-mail channels see it (webhook body, command stdin and environment). Pure: the
 * adapters in src/adapters/alert-channels.ts send what these functions build.
 */

export interface AlertEvent {
  /** always "baton": lets one receiver tell baton's events from others */
  tool: 'baton';
  /** the alert's one-line subject, e.g. `[baton] sink: pull of data FAILED for shop` */
  subject: string;
  /** the alert's full text (what the mail body says) */
  text: string;
  /** the host that sent it */
  host: string;
  /** when it was sent, ISO 8601 UTC */
  time: string;
}

export type WebhookPreset = 'generic' | 'ntfy' | 'slack';

/** Bound on the text put into a webhook body or an environment variable (the tail is cut). */
export const EVENT_TEXT_MAX = 16_000;

function bounded(text: string): string {
  return text.length <= EVENT_TEXT_MAX
    ? text
    : `${text.slice(0, EVENT_TEXT_MAX)}\n[… cut at ${EVENT_TEXT_MAX} characters]`;
}

export function alertEvent(alert: { subject: string; text: string }, host: string, now: Date): AlertEvent {
  return { tool: 'baton', subject: alert.subject, text: bounded(alert.text), host, time: now.toISOString() };
}

/**
 * Where and what to POST for a preset. `generic`: the event itself. `slack`: `{text}` as Slack's,
 * Mattermost's and Rocket.Chat's incoming webhooks take it. `ntfy`: ntfy's JSON publishing, posted to
 * the server root with the topic taken from the URL's last path segment (`https://ntfy.sh/ops`).
 */
export function webhookRequest(
  preset: WebhookPreset,
  url: string,
  ev: AlertEvent,
): { url: string; body: string } {
  switch (preset) {
    case 'generic':
      return { url, body: JSON.stringify(ev) };
    case 'slack':
      return {
        url,
        body: JSON.stringify({ text: `*${ev.subject}*\n\`\`\`\n${ev.text.trimEnd()}\n\`\`\`` }),
      };
    case 'ntfy': {
      const u = new URL(url);
      const segments = u.pathname.split('/').filter((s) => s !== '');
      const topic = segments.pop() ?? '';
      u.pathname = `/${segments.join('/')}`;
      return {
        url: u.toString(),
        body: JSON.stringify({ topic, title: ev.subject, message: ev.text, priority: 4, tags: ['warning'] }),
      };
    }
  }
}

/** The ntfy topic of a URL, '' when the URL names none (the config check refuses that). */
export function ntfyTopic(url: string): string {
  try {
    return (
      new URL(url).pathname
        .split('/')
        .filter((s) => s !== '')
        .pop() ?? ''
    );
  } catch {
    return '';
  }
}

/** `BATON_EVENT_*` variables for an alert command (NUL bytes, which no variable can hold, dropped). */
export function eventEnvironment(ev: AlertEvent): Record<string, string> {
  const clean = (s: string) => s.replaceAll('\0', '');
  return {
    BATON_EVENT_TOOL: ev.tool,
    BATON_EVENT_SUBJECT: clean(ev.subject),
    BATON_EVENT_TEXT: clean(ev.text),
    BATON_EVENT_HOST: clean(ev.host),
    BATON_EVENT_TIME: ev.time,
  };
}
