<?php
// This file is part of Moodle - http://moodle.org/
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

namespace local_student_dashboard\local;

/**
 * Formats money and calendar dates for the current user's language.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class formatter {

    /** @var string How currencies are shown: symbol or code. */
    private string $currencyformat;

    /**
     * Create a formatter.
     *
     * @param string $currencyformat "symbol" ($10,000.00 where the locale knows the symbol) or "code" (USD 10,000.00).
     */
    public function __construct(string $currencyformat = 'symbol') {
        $this->currencyformat = $currencyformat;
    }

    /**
     * Format an amount.
     *
     * @param int $cents The amount in cents.
     * @param string|null $currency The ISO 4217 code, null when unknown.
     * @return string
     */
    public function money(int $cents, ?string $currency): string {
        $amount = $cents / 100;
        if ($currency !== null && $this->currencyformat === 'symbol' && class_exists('\NumberFormatter')) {
            $numberformatter = new \NumberFormatter(self::locale(), \NumberFormatter::CURRENCY);
            $formatted = $numberformatter->formatCurrency($amount, $currency);
            if ($formatted !== false) {
                return $formatted;
            }
        }
        $number = number_format(abs($amount), 2, get_string('decsep', 'langconfig'), get_string('thousandssep', 'langconfig'));
        $number = ($cents < 0 ? '-' : '') . $number;
        return $currency === null ? $number : $currency . ' ' . $number;
    }

    /**
     * Format a percentage given in hundredths ("20%", "12.5%").
     *
     * @param int $hundredths The percentage in hundredths of a percent.
     * @return string
     */
    public function percent(int $hundredths): string {
        $decimals = $hundredths % 100 === 0 ? 0 : ($hundredths % 10 === 0 ? 1 : 2);
        return format_float($hundredths / 100, $decimals, true) . '%';
    }

    /**
     * Format a calendar date (YYYY-MM-DD) in the user's language, without any time zone shift.
     *
     * @param string|null $date The date.
     * @return string The formatted date, or an empty string when there is none.
     */
    public function date(?string $date): string {
        if ($date === null || !row_validator::is_date($date)) {
            return '';
        }
        [$year, $month, $day] = array_map('intval', explode('-', $date));
        return userdate(gmmktime(12, 0, 0, $month, $day, $year), get_string('strftimedate', 'langconfig'), 'UTC');
    }

    /**
     * The ICU locale of the current language, e.g. "en_AU" from "en_AU.UTF-8".
     *
     * @return string
     */
    private static function locale(): string {
        $locale = get_string('locale', 'langconfig');
        return preg_replace('/[.@].*$/', '', $locale) ?: 'en';
    }
}
