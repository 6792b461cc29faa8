import createDebug from 'debug';

const root = createDebug('ninja-auth');

/** One line per request: endpoint, status, duration, token fingerprints. */
export const proxyLog = root.extend('proxy');
/** Hook failures and timeouts. */
export const hooksLog = root.extend('hooks');
/** Store failures: the router then refreshes without the store. */
export const storeLog = root.extend('store');
/** OIDC / RFC 8414 discovery of the upstream's endpoints. */
export const discoveryLog = root.extend('discovery');
/** Whether OpenTelemetry was found and where the router's metrics and spans go. */
export const telemetryLog = root.extend('telemetry');
