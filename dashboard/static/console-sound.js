// The alarm sound of the operators' console: a two-tone chime repeated while any alarm waits for someone
// to take or acknowledge it. Browsers only start audio after the user has clicked or pressed a key on the
// page, so until then the console shows "click to enable sound"; a mute lasts a few minutes only, so that
// nobody forgets to unmute a screen that is watched all night.

export const REPEAT_MS = 4000;
export const MUTE_MS = 5 * 60 * 1000;

export class AlarmSound {
  constructor() {
    const Context = window.AudioContext || window.webkitAudioContext;
    this.context = Context ? new Context() : null;
    this.mutedUntil = 0;
    this.wanted = false; // some alarm is waiting for a human
    this.timer = null;
    this.chimes = 0; // chimes actually started (tests and the benchmark read it)
    this.listeners = new Set();
    this.context?.addEventListener?.("statechange", () => this.changed());
  }

  // "blocked" until the browser lets us play; "muted" while a mute runs; "on" otherwise.
  get state() {
    if (!this.context || this.context.state !== "running") return "blocked";
    return this.muteLeftMs() > 0 ? "muted" : "on";
  }

  get sounding() {
    return this.wanted && this.state === "on";
  }

  muteLeftMs() {
    return Math.max(0, this.mutedUntil - Date.now());
  }

  onChange(listener) {
    this.listeners.add(listener);
  }

  changed() {
    this.schedule();
    for (const listener of this.listeners) listener(this);
  }

  // Called on every click and key press: the gesture the browser's autoplay rule waits for.
  unlock() {
    if (this.context && this.context.state !== "running") this.context.resume().then(() => this.changed(), () => {});
  }

  want(wanted) {
    if (wanted === this.wanted) return;
    this.wanted = wanted;
    this.changed();
  }

  toggleMute() {
    this.mutedUntil = this.muteLeftMs() > 0 ? 0 : Date.now() + MUTE_MS;
    this.changed();
  }

  // One timer: chime now, then every REPEAT_MS while sounding; a mute's end re-checks by itself.
  schedule() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.sounding) {
      this.chime();
      this.timer = setTimeout(() => this.schedule(), REPEAT_MS);
    } else if (this.wanted && this.muteLeftMs() > 0) {
      this.timer = setTimeout(() => this.changed(), this.muteLeftMs() + 50);
    }
  }

  chime() {
    const ctx = this.context;
    const start = ctx.currentTime + 0.02;
    const gain = ctx.createGain();
    gain.connect(ctx.destination);
    gain.gain.setValueAtTime(0.0001, start);
    [[880, 0], [660, 0.35]].forEach(([frequency, offset]) => {
      const osc = ctx.createOscillator();
      osc.type = "square";
      osc.frequency.value = frequency;
      osc.connect(gain);
      gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.03);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.3);
      osc.start(start + offset);
      osc.stop(start + offset + 0.32);
    });
    this.chimes += 1;
  }
}
