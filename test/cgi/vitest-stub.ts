// Stands in for 'vitest' inside the bundled CGI script (servers.test.ts): the conformance
// modules import describe/test/expect at the top, but only the test process calls them;
// the script only runs the cases' apps.
const outside = (name: string) => () => {
  throw new Error(
    `${name}() called inside the CGI script; the conformance apps must not use vitest`,
  );
};
export const describe = outside('describe');
export const test = outside('test');
export const it = outside('it');
export const expect = outside('expect');
export const beforeAll = outside('beforeAll');
export const afterAll = outside('afterAll');
