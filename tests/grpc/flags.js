// `--name value` flags for client.js and server.js, with defaults whose type
// (number, string, boolean) decides how a value is read. `--flag` alone sets
// a boolean default to true.
'use strict';

function parseFlags(argv, defaults) {
  const flags = { ...defaults };
  for (let i = 0; i < argv.length; i += 1) {
    const name = argv[i].replace(/^--/, '');
    if (!(name in defaults)) throw new Error(`unknown flag ${argv[i]}`);
    if (typeof defaults[name] === 'boolean') {
      flags[name] = true;
      continue;
    }
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${argv[i]} needs a value`);
    i += 1;
    flags[name] = typeof defaults[name] === 'number' ? Number(value) : value;
  }
  return flags;
}

function now() {
  return (Date.now() / 1000).toFixed(6);
}

module.exports = { parseFlags, now };
