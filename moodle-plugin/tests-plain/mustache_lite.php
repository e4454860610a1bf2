<?php
// This file is part of the zmsync project, the local_student_dashboard Moodle plugin.
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

/**
 * The part of Mustache that the plugin's templates use, rendered the way Moodle's engine does, for plain-PHP tests.
 *
 * Variables ({{x}} escaped with Moodle's s(), {{{x}}} and {{&x}} raw), dotted names, sections over lists,
 * objects and truthy values, inverted sections, comments, and Moodle's {{#str}} key, component, a {{/str}} helper
 * (the "a" part is rendered first, with escaping, as Moodle's string helper does). Partials, other helpers and
 * delimiter changes are refused, so a template that needs them fails the test instead of rendering wrongly.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
final class mustache_lite {

    /** @var callable(string, string, mixed): string The string helper's get_string. */
    private $getstring;

    /**
     * Create a renderer.
     *
     * @param callable $getstring get_string(key, component, a).
     */
    public function __construct(callable $getstring) {
        $this->getstring = $getstring;
    }

    /**
     * Render a template file's text with a context.
     *
     * @param string $template The template text.
     * @param array $context The context (arrays; lists are iterated).
     * @return string
     */
    public function render(string $template, array $context): string {
        return $this->render_tokens($this->parse($template), [$context]);
    }

    /**
     * Moodle's s(): htmlspecialchars that keeps numeric entities.
     *
     * @param mixed $value
     * @return string
     */
    public static function escape($value): string {
        if ($value === false) {
            return '0';
        }
        if ($value === null || $value === '') {
            return '';
        }
        return preg_replace('/&amp;#(\d+|x[0-9a-f]+);/i', '&#$1;',
            htmlspecialchars((string) $value, ENT_QUOTES | ENT_HTML401 | ENT_SUBSTITUTE));
    }

    /**
     * Parse into a tree: strings and tags, sections holding their children and their raw inner text.
     *
     * @param string $template
     * @return array
     */
    private function parse(string $template): array {
        $pattern = '/\{\{\{\s*([\w.]+)\s*\}\}\}|\{\{\s*([!#^\/&>=]?)\s*(.*?)\s*\}\}/s';
        preg_match_all($pattern, $template, $matches, PREG_SET_ORDER | PREG_OFFSET_CAPTURE);
        $root = ['children' => []];
        $stack = [&$root];
        $position = 0;
        foreach ($matches as $match) {
            [$whole, $offset] = $match[0];
            $top = &$stack[count($stack) - 1];
            if ($offset > $position) {
                $top['children'][] = substr($template, $position, $offset - $position);
            }
            $position = $offset + strlen($whole);
            if (isset($match[1]) && $match[1][1] >= 0 && $match[1][0] !== '') {
                $top['children'][] = ['type' => 'raw', 'name' => $match[1][0]];
                unset($top);
                continue;
            }
            $sigil = $match[2][0];
            $name = $match[3][0];
            switch ($sigil) {
                case '!':
                    break;
                case '':
                    $top['children'][] = ['type' => 'var', 'name' => $name];
                    break;
                case '&':
                    $top['children'][] = ['type' => 'raw', 'name' => $name];
                    break;
                case '#':
                case '^':
                    $section = ['type' => $sigil, 'name' => $name, 'children' => [], 'start' => $position];
                    $top['children'][] = $section;
                    $stack[] = &$top['children'][count($top['children']) - 1];
                    break;
                case '/':
                    if (count($stack) < 2 || $top['name'] !== $name) {
                        throw new RuntimeException("mustache_lite: unexpected {{/$name}}");
                    }
                    $top['inner'] = substr($template, $top['start'], $offset - $top['start']);
                    array_pop($stack);
                    break;
                default:
                    throw new RuntimeException("mustache_lite: unsupported tag {{{$sigil}$name}}");
            }
            unset($top);
        }
        if (count($stack) !== 1) {
            throw new RuntimeException('mustache_lite: unclosed section');
        }
        $root['children'][] = substr($template, $position);
        return $root['children'];
    }

    /**
     * Look a (dotted) name up the context stack.
     *
     * @param string $name
     * @param array $stack
     * @return mixed Null when absent.
     */
    private function lookup(string $name, array $stack) {
        if ($name === '.') {
            return end($stack);
        }
        $parts = explode('.', $name);
        for ($i = count($stack) - 1; $i >= 0; $i--) {
            $frame = $stack[$i];
            if (is_array($frame) && array_key_exists($parts[0], $frame)) {
                $value = $frame[$parts[0]];
                foreach (array_slice($parts, 1) as $part) {
                    $value = is_array($value) && array_key_exists($part, $value) ? $value[$part] : null;
                }
                return $value;
            }
        }
        return null;
    }

    /**
     * Render a list of tokens.
     *
     * @param array $tokens
     * @param array $stack
     * @return string
     */
    private function render_tokens(array $tokens, array $stack): string {
        $out = '';
        foreach ($tokens as $token) {
            if (is_string($token)) {
                $out .= $token;
                continue;
            }
            $name = $token['name'];
            if ($token['type'] === 'var' || $token['type'] === 'raw') {
                $value = $this->lookup($name, $stack);
                if (is_array($value)) {
                    throw new RuntimeException("mustache_lite: {{{$name}}} is not a scalar");
                }
                $value = is_bool($value) ? ($value ? '1' : '') : (string) ($value ?? '');
                $out .= $token['type'] === 'var' ? self::escape($value) : $value;
                continue;
            }
            if ($name === 'str' && $token['type'] === '#') {
                $out .= $this->string_helper($token['inner'], $stack);
                continue;
            }
            if (in_array($name, ['pix', 'js', 'quote', 'shortentext', 'userdate', 'cleanstr', 'uniqid'], true)) {
                throw new RuntimeException("mustache_lite: helper {{#$name}} is not supported");
            }
            $value = $this->lookup($name, $stack);
            $truthy = is_array($value) ? count($value) > 0 : !empty($value);
            if ($token['type'] === '^') {
                if (!$truthy) {
                    $out .= $this->render_tokens($token['children'], $stack);
                }
                continue;
            }
            if (!$truthy) {
                continue;
            }
            if (is_array($value) && array_is_list($value)) {
                foreach ($value as $item) {
                    $out .= $this->render_tokens($token['children'], array_merge($stack, [$item]));
                }
            } else {
                $out .= $this->render_tokens($token['children'], array_merge($stack, [$value]));
            }
        }
        return $out;
    }

    /**
     * Moodle's {{#str}} key, component, a {{/str}}: "a" is rendered (escaped) first; the result is not escaped.
     *
     * @param string $inner
     * @param array $stack
     * @return string
     */
    private function string_helper(string $inner, array $stack): string {
        $parts = explode(',', $inner, 3);
        $key = trim($parts[0]);
        $component = trim($parts[1] ?? '');
        $a = null;
        if (isset($parts[2])) {
            $a = $this->render_tokens($this->parse(trim($parts[2])), $stack);
        }
        return ($this->getstring)($key, $component, $a);
    }
}
