/**
 * The systemd units the Debian package ships in /usr/lib/systemd/system (scripts/package.mjs): the
 * same text `baton install source|sink` writes to /etc/systemd/system for the default configs and
 * schedules, so an install on top changes nothing but where they live. Shipped disabled.
 */
import { DEFAULT_CALENDAR, sinkUnits, sourceUnits, type UnitFile } from '../install/schedule.js';
import { sourceSchema, STREAMS } from '../config/schema.js';
import { DEFAULT_CONFIG } from './app.js';

/** `baton` is the argv the units run, e.g. [`/usr/bin/node`, flags…, `/usr/lib/baton/cli/main.js`]. */
export function packagedUnits(baton: readonly string[]): UnitFile[] {
  const appStartTimeoutMs = sourceSchema.shape.app.shape.startTimeout.parse(undefined);
  return [
    ...sourceUnits({
      baton,
      configFile: DEFAULT_CONFIG.source,
      onCalendar: DEFAULT_CALENDAR.sourceBackup,
      appStartTimeoutMs,
      verifyCalendar: DEFAULT_CALENDAR.verify,
    }),
    ...sinkUnits({
      baton,
      configFile: DEFAULT_CONFIG.sink,
      verifyCalendar: DEFAULT_CALENDAR.verify,
      streams: STREAMS.map((stream) => ({ stream, onCalendar: DEFAULT_CALENDAR.sinkPull[stream] })),
    }),
  ];
}
