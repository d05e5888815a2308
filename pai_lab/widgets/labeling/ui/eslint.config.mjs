// Lint rules for the labeler's front end (plain JavaScript modules, type-checked by tsc through
// `// @ts-check`): eslint's recommended rules and the sidebar's few rules of its own; prettier owns the
// layout (`jlpm prettier`), so no layout rule is here. The page runs in a browser, the tests under node.
import js from '@eslint/js';
import globals from 'globals';

export default [
  { ignores: ['node_modules/', '.yarn/'] },
  js.configs.recommended,
  {
    files: ['src/**/*.js'],
    languageOptions: { globals: globals.browser }
  },
  {
    files: ['test/**/*.js', '*.mjs'],
    languageOptions: { globals: globals.node }
  },
  {
    rules: {
      'no-unused-vars': ['error', { args: 'none' }],
      curly: ['error', 'all'],
      eqeqeq: ['error', 'smart'],
      'prefer-arrow-callback': 'error'
    }
  }
];
