// @ts-check
import { h } from '../dom.js';
import { Tool } from './tool.js';
export class TextTool extends Tool {
  constructor(...a) {
    super(...a);
    this.area = h('textarea', {
      rows: '5',
      'data-role': 'transcript',
      placeholder: 'Type the answer; Ctrl+Enter to confirm'
    });
    this.area.value = this.model.text || '';
    this.area.addEventListener('input', () => {
      const v = this.area.value;
      this.app.change(ms => {
        ms[this.qi].text = v;
      });
    });
    this.body.append(this.area);
    const sg = this.suggestion;
    if (sg && sg.text) {
      this.body.append(
        h(
          'div',
          { class: 'pl-suggest' },
          'Suggestion: ',
          h('i', {}, sg.text),
          ' — ',
          h('span', { class: 'pl-kbd' }, 'A'),
          ' to accept'
        )
      );
    }
  }
  refresh() {
    this.area.value = this.model.text || '';
  }
  key(e) {
    if (e.key === 't' || e.key === 'T' || (e.key === 'Enter' && !this.model.text && this.q.required)) {
      this.area.focus();
      return true;
    }
    return false;
  }
}
