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
 * Stand-ins for the few Moodle functions the dashboard's output and formatter classes call, for plain-PHP tests.
 *
 * Each behaves as Moodle 5.0 does with a stock English site (lang "en", whose locale is en_AU.UTF-8;
 * formatstringstriptags on; no filters): format_string() escapes "&" and strips tags then escapes "<" and ">",
 * get_string() reads the plugin's language file and a handful of core strings.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

// phpcs:disable moodle.Files.MoodleInternal.MoodleInternalNotNeeded

define('MOODLE_INTERNAL', true);
define('DEBUG_DEVELOPER', 32767);
define('GRADE_TYPE_SCALE', 2);

/** Marker interface (Moodle core). */
interface renderable {
}

/** Moodle core's templatable. */
interface templatable {
    /**
     * The template context.
     *
     * @param renderer_base $output
     * @return mixed
     */
    public function export_for_template(renderer_base $output);
}

/** Moodle core's renderer_base, unused by the classes under test. */
class renderer_base {
}

/**
 * The strings the tests know: the plugin's language file, langconfig for en, a few core strings.
 *
 * @return array [component => [key => text]]
 */
function zmsync_test_strings(): array {
    static $strings = null;
    if ($strings === null) {
        $string = [];
        include(dirname(__DIR__) . '/local/student_dashboard/lang/en/local_student_dashboard.php');
        $strings = [
            'local_student_dashboard' => $string,
            'langconfig' => [
                'locale' => 'en_AU.UTF-8',
                'decsep' => '.',
                'thousandssep' => ',',
                'strftimedate' => '%d %B %Y',
                'strftimedatetime' => '%d %B %Y, %I:%M %p',
            ],
            'moodle' => [
                'fullname' => 'Full name',
                'email' => 'Email address',
                'status' => 'Status',
                'date' => 'Date',
            ],
        ];
    }
    return $strings;
}

/**
 * Moodle's get_string for the known strings; {$a} and {$a->name} are replaced as Moodle does.
 *
 * @param string $key
 * @param string $component
 * @param mixed $a
 * @return string
 */
function get_string($key, $component = '', $a = null) {
    $component = ($component === '' || $component === 'core') ? 'moodle' : $component;
    $strings = zmsync_test_strings();
    if (!isset($strings[$component][$key])) {
        throw new RuntimeException("unknown string $key, $component");
    }
    $text = $strings[$component][$key];
    if ($a !== null) {
        if (is_object($a) || is_array($a)) {
            foreach ((array) $a as $name => $value) {
                if (!is_array($value) && !is_object($value)) {
                    $text = str_replace('{$a->' . $name . '}', (string) $value, $text);
                }
            }
        } else {
            $text = str_replace('{$a}', (string) $a, $text);
        }
    }
    return $text;
}

/**
 * Moodle's format_string() on a stock site (striptags on, no filters).
 *
 * @param string|null $string
 * @param bool $striplinks
 * @param array|null $options
 * @return string
 */
function format_string($string, $striplinks = true, $options = null) {
    if ($string === '' || $string === null) {
        return '';
    }
    $escape = $options['escape'] ?? true;
    if ($escape) {
        $string = preg_replace("/\&(?![a-zA-Z0-9#]{1,8};)/", "&amp;", $string);
        return str_replace(['<', '>'], ['&lt;', '&gt;'], strip_tags($string));
    }
    return strip_tags($string);
}

/**
 * Moodle's fullname() with the default "firstname lastname" display.
 *
 * @param stdClass $user
 * @return string
 */
function fullname($user) {
    return trim($user->firstname . ' ' . $user->lastname);
}

/**
 * Moodle's userdate() for the strftime formats the plugin uses.
 *
 * @param int $timestamp
 * @param string $format
 * @param string|float $timezone "UTC", or 99 for the site's (Europe/London in these tests)
 * @return string
 */
function userdate($timestamp, $format = '', $timezone = 99) {
    $zone = new DateTimeZone(($timezone === 99 || $timezone === '99') ? 'Europe/London' : (string) $timezone);
    $date = (new DateTimeImmutable('@' . (int) $timestamp))->setTimezone($zone);
    // Moodle's userdate() drops the leading zero of %d and %I (fixday, fixhour): "1 December 2025, 2:45 AM".
    $map = ['%d' => 'j', '%B' => 'F', '%Y' => 'Y', '%I' => 'g', '%M' => 'i', '%p' => 'A', '%H' => 'H', '%A' => 'l'];
    return strtr($format, array_map(fn(string $code): string => $date->format($code), $map));
}

/**
 * Moodle's format_float() with the en decimal separator.
 *
 * @param float $float
 * @param int $decimalpoints
 * @param bool $localized
 * @return string
 */
function format_float($float, $decimalpoints = 1, $localized = true) {
    return number_format((float) $float, $decimalpoints, '.', '');
}

/**
 * Moodle's debugging(): the tests treat any call as a failure.
 *
 * @param string $message
 * @param int $level
 */
function debugging($message = '', $level = 0) {
    throw new RuntimeException('debugging: ' . $message);
}

/**
 * Moodle's plugin settings, in memory.
 *
 * @param string $plugin
 * @param string|null $name
 * @return mixed The value (string), false when unset, or all of the plugin's as an object when $name is null.
 */
function get_config($plugin, $name = null) {
    global $zmsynctestconfig;
    $values = $zmsynctestconfig[$plugin] ?? [];
    if ($name === null) {
        return (object) $values;
    }
    return array_key_exists($name, $values) ? $values[$name] : false;
}

/**
 * Moodle's set_config, in memory (values are stored as strings, as Moodle does).
 *
 * @param string $name
 * @param mixed $value
 * @param string $plugin
 */
function set_config($name, $value, $plugin = null) {
    global $zmsynctestconfig, $zmsynctestconfigwrites;
    $zmsynctestconfig[$plugin][$name] = (string) $value;
    $zmsynctestconfigwrites = ($zmsynctestconfigwrites ?? 0) + 1;
}
