// The kinds of a rank's timeline spans (proto Span.kind): what the rank loop records and the reports,
// the critical path and the calibration read.

/**
 * Work on the compute thread: a graph of one projection, of one attention (with its MLP), or of
 * several layers (EngineInfo.graphs).
 */
export const COMPUTE_KINDS: readonly string[] = ['project', 'attend', 'layers'];

/** The rank loop waited for a layer's K/V from its predecessor (TSP: from every other rank). */
export const WAIT_KIND = 'wait';

/** An outgoing link was busy with a layer's K/V (its idle stretches are left out). */
export const SEND_KIND = 'send';

/**
 * The rank loop held back after its graph had finished because its outbox was full: its links were
 * behind. The only send time a rank's own compute can be delayed by.
 */
export const SEND_BLOCKED_KIND = 'send-blocked';
