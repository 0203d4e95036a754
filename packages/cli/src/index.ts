// tsgi: the `tsgi` command as a library: the runner, the command registry and the pieces
// a new command (fastcgi, scgi, cgi) is built from. Explicit named exports only.
export type {
  Command,
  CommandOption,
  CommandOptions,
  Serving,
  SharedOptions,
} from './command.js';
export { httpCommand } from './commands/http.js';
export { commands, findCommand } from './commands/index.js';
export { loadApp, type ModuleSpec, parseModuleSpec, resolveModule } from './load.js';
export {
  commandHelp,
  globalHelp,
  type ParsedCommandLine,
  parseCommandLine,
  SHARED_OPTIONS,
} from './options.js';
export { main, oneLine } from './run.js';
export {
  type Listen,
  parseChoice,
  parseCount,
  parseEncoding,
  parseListen,
  parseMount,
  parseSeconds,
  parseSize,
} from './values.js';
